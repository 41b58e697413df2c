/**
 * The ONNX graph layer: representation and builder (`graph.ts`), shape inference (`infer.ts`,
 * `shape.ts`) and the ModelProto encoder (`proto.ts`).
 *
 * @module
 */

export * from "./graph.ts";
export * from "./shape.ts";
export * from "./infer.ts";
export * from "./proto.ts";
export * from "./types.ts";
