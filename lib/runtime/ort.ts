/**
 * onnxruntime-node, loaded once for the session layer with its telemetry off
 * (`telemetry_off.ts` runs first: ES modules evaluate their imports in order). `session.ts` and
 * `tensor.ts` import onnxruntime from here, never directly.
 *
 * @module
 */

import "./telemetry_off.ts";
import * as ort from "onnxruntime-node";

export { ort };
