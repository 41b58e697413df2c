/**
 * `deno task release`: one executable file for linux-x64, `dist/recsysllm-VERSION-linux-x64`,
 * that runs the toolkit from any directory on a machine with no network, no Deno and no Deno
 * cache. It is a self-extracting file: a POSIX shell stub followed by the offline bundle
 * (tools/bundle.ts: the Deno runtime, the toolkit, its npm packages with onnxruntime's linux-x64
 * library only, and the demo data) as a tar.xz. The first run unpacks the payload into
 * `$RECSYSLLM_HOME` (default `$XDG_CACHE_HOME/recsysllm` or `~/.cache/recsysllm`, else
 * `$TMPDIR/recsysllm-UID`), into a folder named by the version and the payload's hash, atomically
 * (a folder moved into place when complete); every run then starts the toolkit from there, with
 * Deno's transpile cache inside it unless `DENO_DIR` is set.
 *
 * `deno compile` cannot serve here: it downloads its runtime (denort) at compile time. Where it
 * can, `deno task compile` builds a single binary the same way (docs/install.md).
 *
 * Prints one JSON line (the file, its size, the payload's hash); an xz release over 60 MB is an
 * error. The file is written under a temporary name and renamed when complete.
 *
 *     deno task release [--out FILE] [--compression xz|gzip|none] [--deno PATH]
 *
 * @module
 */

import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** The limit the issue sets for the release file, with xz. */
export const LIMIT_BYTES = 60 * 1024 * 1024;

const USAGE = `Usage: deno task release [flags]

Writes one self-extracting executable for linux-x64 (a shell stub and the offline bundle as
tar.xz): copy it anywhere and run it (./recsysllm-VERSION-linux-x64 demo); the first run
unpacks it into ~/.cache/recsysllm (or $RECSYSLLM_HOME).

Flags:
  --out FILE            the file (default dist/recsysllm-VERSION-linux-x64)
  --compression NAME    xz (default, smallest; unpacking needs xz) | gzip | none
  --deno PATH           the linux-x64 deno binary to ship (default: the one running this)`;

/** The tar flag that reads each compression. */
const TAR_FLAG = { xz: "J", gzip: "z", none: "" } as const;

/**
 * The shell stub: unpacks the payload (the bytes after the stub) once per version and hash, then
 * runs the bundle's launcher. `offset` is the stub's length in bytes, written as ten digits so
 * the stub's length does not depend on it.
 */
export function stub(options: {
  version: string;
  name: string;
  hash: string;
  offset: number;
  compression: keyof typeof TAR_FLAG;
}): string {
  const { version, name, hash, offset, compression } = options;
  const flag = TAR_FLAG[compression];
  const needs = compression === "none" ? "" : compression;
  return `#!/bin/sh
# recsysllm ${version} for linux-x64: one self-extracting file (tools/release.ts). The first run
# unpacks the Deno runtime, the toolkit, onnxruntime's linux-x64 library and the demo data (the
# archive appended to this script) into $RECSYSLLM_HOME (default ~/.cache/recsysllm, else
# $TMPDIR/recsysllm-UID); every run starts the toolkit from there. No network, no Deno needed.
set -e
name=${name}
build=${version}-${hash}
offset=${String(offset).padStart(10, "0")}
self=$(readlink -f "$0" 2>/dev/null || echo "$0")
home_cache=
[ -n "$HOME" ] && home_cache="$HOME/.cache/recsysllm"
xdg_cache=
[ -n "$XDG_CACHE_HOME" ] && xdg_cache="$XDG_CACHE_HOME/recsysllm"
base=
shared="\${TMPDIR:-/tmp}/recsysllm-$(id -u)"
for candidate in "$RECSYSLLM_HOME" "$xdg_cache" "$home_cache" "$shared"; do
  [ -n "$candidate" ] || continue
  mkdir -p "$candidate" 2>/dev/null || continue
  # In a shared temporary folder, only a folder of this user's that nobody else may write: another
  # user could have made it first, with a program waiting in it.
  if [ "$candidate" = "$shared" ]; then
    chmod 700 "$candidate" 2>/dev/null || continue
    [ -O "$candidate" ] || continue
  fi
  if [ -w "$candidate" ]; then base=$candidate; break; fi
done
if [ -z "$base" ]; then
  echo "recsysllm: no writable folder to unpack into (set RECSYSLLM_HOME)" >&2
  exit 1
fi
dir="$base/$build"
if [ ! -f "$dir/.complete" ]; then
  ${
    needs === ""
      ? ":"
      : `command -v ${needs} >/dev/null 2>&1 || { echo "recsysllm: unpacking needs ${needs}" >&2; exit 1; }`
  }
  echo "recsysllm: unpacking into $dir (first run only)" >&2
  tmp=$(mktemp -d "$base/.unpack-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT INT TERM
  tail -c +"$(expr "$offset" + 1)" "$self" | tar -x${flag}f - -C "$tmp"
  : > "$tmp/$name/.complete"
  [ -f "$dir/.complete" ] || { rm -rf "$dir"; mv "$tmp/$name" "$dir"; }
  rm -rf "$tmp"
  trap - EXIT INT TERM
fi
export DENO_DIR="\${DENO_DIR:-$dir/.deno-cache}"
exec "$dir/recsysllm" "$@"
`;
}

/** A one-line failure (exit `code`), printed by the entry point. */
class Failure extends Error {
  constructor(message: string, readonly code = 1) {
    super(message);
  }
}

async function sha256Hex(path: string): Promise<string> {
  const bytes = await Deno.readFile(path);
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function main(): Promise<void> {
  let values;
  try {
    values = parseArgs({
      args: Deno.args,
      options: {
        out: { type: "string" },
        compression: { type: "string", default: "xz" },
        deno: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }).values;
  } catch (error) {
    throw new Failure(`${(error as Error).message.split("\n")[0]} (see --help)`, 2);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const compression = values.compression as keyof typeof TAR_FLAG;
  if (!(compression in TAR_FLAG)) {
    throw new Failure(`--compression: "${compression}" is not one of xz, gzip, none`, 2);
  }
  const started = performance.now();
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const name = `recsysllm-${config.version}-linux-x64`;
  const out = values.out ?? join(ROOT, "dist", name);
  await Deno.mkdir(dirname(out), { recursive: true });
  const work = await Deno.makeTempDir({ prefix: "recsysllm-release-" });
  const partial = `${out}.partial`;
  try {
    // The payload: the offline bundle (which reports its own progress).
    const payload = join(work, "payload");
    const bundled = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "tools", "bundle.ts"),
        "--compression",
        compression,
        "--out",
        payload,
        ...(values.deno ? ["--deno", values.deno] : []),
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!bundled.success) throw new Failure(`the bundle failed (exit ${bundled.code})`);
    const hash = (await sha256Hex(payload)).slice(0, 12);
    const head = (offset: number) =>
      new TextEncoder().encode(
        stub({ version: config.version, name, hash, offset, compression }),
      );
    const header = head(head(0).length);
    console.error(`release: writing ${out}`);
    await Deno.writeFile(partial, header);
    const file = await Deno.open(partial, { append: true });
    // pipeTo closes both files when done.
    await (await Deno.open(payload, { read: true })).readable.pipeTo(file.writable);
    await Deno.chmod(partial, 0o755);
    await Deno.rename(partial, out);
    const bytes = (await Deno.stat(out)).size;
    const mb = (n: number) => Math.round(n / 1024 / 1024 * 10) / 10;
    console.log(JSON.stringify({
      release: out,
      bytes,
      mb: mb(bytes),
      limit_mb: mb(LIMIT_BYTES),
      compression,
      payload_sha256: hash,
      seconds: Math.round((performance.now() - started) / 100) / 10,
    }));
    if (compression === "xz" && bytes > LIMIT_BYTES) {
      throw new Failure(`${out} is ${mb(bytes)} MB, over the ${mb(LIMIT_BYTES)} MB limit`);
    }
  } finally {
    await Deno.remove(partial).catch(() => {});
    await Deno.remove(work, { recursive: true });
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    if (!(error instanceof Failure)) throw error;
    console.error(`release: ${error.message}`);
    Deno.exit(error.code);
  }
}
