import assert from "node:assert/strict";
import { Graph } from "../lib/onnx/graph.ts";
import { encodeModelChunks } from "../lib/onnx/proto.ts";
import { DeviceError, Session } from "../lib/runtime/session.ts";
import { float32 } from "../lib/runtime/tensor.ts";
import { readProfile } from "../lib/runtime/profile.ts";
import { withTempDir } from "./helpers/temp.ts";
import { ROOT, runProcess } from "./helpers/process.ts";
import { webgpuProblem } from "../lib/runtime/providers.ts";

function smallGraph(): Graph {
  const g = new Graph("small");
  const x = g.input("x", "float32", ["N"]);
  g.output(g.mul(x, g.constant(2)), "double");
  g.output(g.exp(x), "exp");
  return g;
}

for (const device of ["cuda", "webgpu"] as const) {
  Deno.test(`--device ${device} either runs there or fails in one line, never on the CPU`, async () => {
    let session: Session | undefined;
    try {
      session = await Session.create(smallGraph(), { device });
    } catch (error) {
      assert.ok(error instanceof DeviceError, `not a DeviceError: ${error}`);
      assert.ok(!error.message.includes("\n"), error.message);
      assert.match(error.message, new RegExp(`^device ${device} cannot be used: `));
      // Names the missing provider file or library where one is missing (lib/runtime/providers.ts).
      assert.match(
        error.message,
        /: (lib[\w.+-]+\.so[\w.]*(, | and ))*lib[\w.+-]+\.so[\w.]* not found|were all found|driver supports Vulkan|is for onnxruntime/,
      );
      return;
    }
    assert.equal(session.device, device);
    await session.release();
  });
}

Deno.test("--device auto ends on a device that loads and says what it passed over", async () => {
  const session = await Session.create(smallGraph(), { device: "auto" });
  assert.ok(["cuda", "webgpu", "cpu"].includes(session.device));
  if (session.device === "cpu") assert.equal(session.skipped.length, 2, session.skipped.join("; "));
  const out = await session.run({ x: float32([2], new Float32Array([1, 2])) });
  assert.deepEqual(Array.from(out.double.data as Float32Array), [2, 4]);
  await session.release();
});

Deno.test("an unknown device is a DeviceError", async () => {
  await assert.rejects(
    () => Session.create(smallGraph(), { device: "tpu" as "cpu" }),
    (e) => e instanceof DeviceError && /unknown device "tpu"/.test(e.message),
  );
});

Deno.test("run returns only the outputs asked for, and a released session refuses to run", async () => {
  const session = await Session.create(smallGraph(), { device: "cpu", threads: 1 });
  assert.deepEqual(session.inputNames, ["x"]);
  assert.deepEqual(session.outputNames, ["double", "exp"]);
  const out = await session.run({ x: float32([3], new Float32Array([0, 1, 2])) }, ["exp"]);
  assert.deepEqual(Object.keys(out), ["exp"]);
  assert.equal((out.exp.data as Float32Array)[0], 1);
  await session.release();
  await assert.rejects(() => session.run({ x: float32([1]) }), /released/);
});

Deno.test("profiling writes per-operator times that readProfile sums up", async () => {
  await withTempDir(async (dir) => {
    const session = await Session.create(smallGraph(), {
      device: "cpu",
      threads: 1,
      profile: `${dir}/prof`,
    });
    for (let i = 0; i < 3; i++) await session.run({ x: float32([4]) });
    session.endProfiling();
    await session.release();
    const summary = await readProfile(`${dir}/prof`);
    assert.equal(summary.runs, 3);
    assert.deepEqual(summary.byOp.map((e) => e.name).sort(), ["Exp", "Mul"]);
    const shares = summary.byOp.reduce((a, e) => a + e.share, 0);
    assert.ok(Math.abs(shares - 1) < 1e-9);
    // Every kernel ran on the CPU provider: both nodes, all the time.
    assert.deepEqual(summary.byProvider.map((p) => [p.name, p.nodes]), [[
      "CPUExecutionProvider",
      2,
    ]]);
    assert.ok(Math.abs(summary.byProvider[0].share - 1) < 1e-9);
    assert.ok(summary.byNode.every((e) => e.ms >= 0));
  });
});

Deno.test("onnxruntime's telemetry is off: no trace file is left in /tmp", async () => {
  const g = new Graph("telemetry");
  g.output(g.neg(g.input("x", "float32", [1])), "y");
  const session = await Session.create(g, { device: "cpu" });
  await session.release();
  assert.equal(Deno.env.get("ORT_DISABLE_TELEMETRY"), "1");
  await assert.rejects(Deno.lstat(`/tmp/mat-debug-${Deno.pid}.log`), Deno.errors.NotFound);
});

Deno.test("feedWeights: large weights become inputs the session feeds itself, same results", async () => {
  // A [512, 1024] float32 weight is 2 MiB (fed); the [4] bias stays an initializer.
  const rows = 512, cols = 1024;
  const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i));
  const bias = Float32Array.of(0.5, -1, 2, 0);
  const g = new Graph("fed");
  const x = g.input("x", "float32", [2, cols]);
  const weight = g.initializer("w", { dtype: "float32", shape: [rows, cols], data: w });
  const y = g.gemm(x, weight, null, { transB: true }); // [2, rows]
  const b = g.initializer("b", { dtype: "float32", shape: [4], data: bias });
  g.output(g.add(g.reshape(y, [-1, 4]), b), "y");

  const encoded = encodeModelChunks(g, { feedMinBytes: 2 ** 20 });
  assert.deepEqual([...encoded.fed!.keys()], ["w"]);
  assert.ok(
    encoded.byteLength < 4096,
    `the weight's data stayed in the model: ${encoded.byteLength}`,
  );

  const feeds = { x: float32([2, cols], Float32Array.from({ length: 2 * cols }, (_, i) => i % 3)) };
  const plain = await Session.create(g, { device: "cpu", threads: 1 });
  const fed = await Session.create(g, {
    device: "cpu",
    threads: 1,
    feedWeights: true,
    memoryPattern: false,
  });
  assert.deepEqual(fed.inputNames, ["x"]);
  const want = (await plain.run(feeds)).y.data as Float32Array;
  const got = (await fed.run(feeds)).y.data as Float32Array;
  assert.equal(got.length, 2 * rows);
  // Same values up to summation order (the initializer's GEMM runs on prepacked weights).
  for (let i = 0; i < got.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])), `y[${i}]`);
  }
  // The session reads the caller's array in place: a change to it shows in the next run.
  w.fill(0);
  const zeroed = (await fed.run(feeds)).y.data as Float32Array;
  assert.deepEqual([...zeroed.slice(0, 4)], [...bias]);
  await plain.release();
  await fed.release();
});

Deno.test({
  name: "--device webgpu without the Vulkan loader is one line on stderr, no Dawn log before it",
  // Where the loader exists, Dawn's own messages depend on the drivers: not this case.
  ignore: webgpuProblem() === undefined,
  async fn() {
    const session = new URL("../lib/runtime/session.ts", import.meta.url).href;
    const graph = new URL("../lib/onnx/graph.ts", import.meta.url).href;
    const code = `import { Session } from "${session}"; import { Graph } from "${graph}";
      const g = new Graph("g"); const x = g.input("x", "float32", ["N"]); g.output(g.exp(x), "y");
      try { await Session.create(g, { device: "webgpu" }); } catch (e) { console.error(e.message); }`;
    const run = await runProcess([
      ...[Deno.execPath(), "eval", `--config=${ROOT}deno.json`, code],
    ], { env: { RECSYSLLM_ORT_LOG: "" } });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /^device webgpu cannot be used: libvulkan\.so\.1 not found .*\n$/);
  },
});
