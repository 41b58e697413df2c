/**
 * A temporary directory for one test body (not a test file itself): made fresh, removed after,
 * whether the body passes or throws.
 *
 * @module
 */

/** Runs `body` with a new temporary directory and removes the directory afterwards. */
export async function withTempDir(
  body: (dir: string) => Promise<void>,
  prefix = "recsysllm-test-",
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
