/**
 * Temporary directories for tests: the one way a test makes one (not a test file itself;
 * tests/test_helpers_test.ts checks that no test calls `Deno.makeTempDir` or `mkdtemp` itself).
 * A test body gets a fresh directory removed after it, whether it passes or throws; what a test
 * file builds once for all its tests (a model, a dataset) lives as long as the test process.
 *
 * @example One test body
 * ```ts ignore
 * await withTempDir(async (dir) => {
 *   await Deno.writeTextFile(`${dir}/a.txt`, "a");
 * }); // dir is gone here
 * ```
 *
 * @module
 */

const PREFIX = "recsysllm-test-";

/**
 * Runs `body` with a new empty temporary directory and removes the directory afterwards, whether
 * `body` returns or throws; returns what `body` returns.
 */
export async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: PREFIX });
  try {
    return await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * A new empty temporary directory that lasts as long as the test process: removed when the
 * process ends. For what a test file (or a helper) builds once and its tests share.
 */
export async function processTempDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: PREFIX });
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* already gone */ }
  });
  return dir;
}
