/**
 * Turns off onnxruntime's telemetry before onnxruntime is loaded. onnxruntime-node 1.30 for Linux
 * carries Microsoft's 1DS telemetry SDK: unless `ORT_DISABLE_TELEMETRY` is set it starts a
 * telemetry logger (which would upload over HTTPS where it can) and leaves an empty
 * `/tmp/mat-debug-PID.log` behind every process. A command-line tool should not do either
 * unasked; a user who wants it can set `ORT_DISABLE_TELEMETRY=0`.
 *
 * Imported for its effect only, by `ort.ts`, before `onnxruntime-node` itself.
 *
 * @module
 */

if (Deno.env.get("ORT_DISABLE_TELEMETRY") === undefined) Deno.env.set("ORT_DISABLE_TELEMETRY", "1");
