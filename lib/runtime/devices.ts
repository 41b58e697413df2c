/**
 * The device choices of a session, apart from onnxruntime so that a command can name them (in
 * its flags) without loading it.
 *
 * @module
 */

/** The device choices. */
export const DEVICES = ["auto", "cpu", "cuda", "webgpu"] as const;
/** A device choice; `auto` picks the first that loads of CUDA, WebGPU, CPU. */
export type Device = typeof DEVICES[number];
/** The device of a session unless one is chosen. */
export const DEFAULT_DEVICE: Device = "auto";
/** A device a session actually runs on. */
export type ResolvedDevice = Exclude<Device, "auto">;
