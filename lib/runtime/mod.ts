/**
 * The session layer over onnxruntime-node: sessions on a device (`session.ts`) and tensor
 * conversion helpers (`tensor.ts`). The only part of the toolkit that imports onnxruntime.
 *
 * @module
 */

export * from "./session.ts";
export { InputError } from "../errors.ts";
export * from "./tensor.ts";
export * from "./profile.ts";
