/**
 * `deno task bundle`: one archive for linux-x64 that runs the toolkit on a machine with no
 * network and no Deno installed or cached: `tar xf recsysllm-VERSION-linux-x64.tar.xz` then
 * `./recsysllm-VERSION-linux-x64/recsysllm demo`. It holds
 *
 * - `bin/deno`: the Deno runtime (by default the one running this script);
 * - `app/`: the toolkit's sources (`main.ts`, `commands/`, `lib/`, `tools/setup_cuda.ts`), the
 *   built-in demo data (`fixtures/demo`), a `deno.json` that resolves the npm packages from
 *   `app/node_modules` (`nodeModulesDir: manual`, so Deno never asks a registry), and the npm
 *   packages the toolkit imports at run time, with onnxruntime's native library for linux-x64
 *   only (the npm package carries seven platforms' binaries);
 * - `recsysllm`: the launcher (`recsysllm setup-cuda ...` and, in a `--bench` bundle,
 *   `recsysllm bench NAME` run the matching scripts).
 *
 * `--bench` adds `bench/` and the Amazon Beauty data its infer benchmark reads, for
 * `bench/gpu_check.sh`. Prints one JSON line with the archive's path and size; a default bundle
 * (no `--bench`) over 60 MB compressed with xz is an error. The archive is written under a
 * temporary name and renamed when complete.
 *
 *     deno task bundle [--out FILE] [--compression xz|gzip|none] [--deno PATH] [--bench]
 *
 * @module
 */

import { basename, dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** The limit the issue sets for the default bundle, compressed. */
export const LIMIT_BYTES = 60 * 1024 * 1024;
/** What a default bundle contains of the repository, relative to its root. */
const APP_PATHS = ["main.ts", "commands", "lib", "fixtures/demo", "tools/setup_cuda.ts"];
/** Left out of the bundle: the demo data's generator, whose output is in fixtures/demo. */
const DEMO_GENERATOR = join("fixtures", "demo", "generate.ts");
/** Dependencies of onnxruntime-node used only by its install script, which never runs here. */
const INSTALL_ONLY = new Set(["adm-zip", "global-agent"]);

const USAGE = `Usage: deno task bundle [flags]

Writes one archive for linux-x64 with the Deno runtime, the toolkit, its npm packages (linux-x64
binaries only) and the demo data; on the target: tar xf FILE && ./recsysllm-*/recsysllm demo

Flags:
  --out FILE            the archive (default dist/recsysllm-VERSION-linux-x64.tar.xz, .tar.gz, .tar)
  --compression NAME    xz (default, smallest) | gzip | none
  --deno PATH           the linux-x64 deno binary to ship (default: the one running this)
  --bench               add bench/ and the Beauty data its infer benchmark reads`;

/** One npm package to ship: its name and the directory it is installed in. */
interface Package {
  name: string;
  version: string;
  dir: string;
}

/** A one-line failure: printed by the entry point, after the temporary files are removed. */
class Failure extends Error {
  constructor(message: string, readonly code = 1) {
    super(message);
  }
}

function fail(message: string, code = 1): never {
  throw new Failure(message, code);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Where Deno's `nodeModulesDir: auto` installed `name@version` under `node_modules/.deno`. */
async function installedPackage(name: string, version: string): Promise<Package> {
  const dir = join(ROOT, "node_modules", ".deno", `${name.replace("/", "+")}@${version}`);
  const pkg = join(dir, "node_modules", name);
  if (!(await exists(join(pkg, "package.json")))) {
    fail(`${name}@${version} is not installed in node_modules (run \`deno install\` first)`);
  }
  return { name, version, dir: pkg };
}

/** The npm packages the toolkit imports (deno.json) and their run-time dependencies. */
async function runtimePackages(imports: Record<string, string>): Promise<Package[]> {
  const found = new Map<string, Package>();
  const queue: [string, string][] = Object.values(imports).flatMap((spec) => {
    const m = spec.match(/^npm:(@?[^@]+)@(.+)$/);
    // Type packages (@types/node, which the type checker needs with a manual node_modules)
    // never run.
    return m && !m[1].startsWith("@types/") ? [[m[1], m[2]] as [string, string]] : [];
  });
  while (queue.length > 0) {
    const [name, version] = queue.shift()!;
    if (found.has(name)) continue;
    const pkg = await installedPackage(name, version);
    found.set(name, pkg);
    const meta = JSON.parse(await Deno.readTextFile(join(pkg.dir, "package.json")));
    for (const [dep, range] of Object.entries(meta.dependencies ?? {})) {
      if (INSTALL_ONLY.has(dep)) continue;
      if (!/^\d+\.\d+\.\d+$/.test(String(range))) {
        fail(`${name} depends on ${dep}@${range}: only exact versions are handled`);
      }
      queue.push([dep, String(range)]);
    }
  }
  return [...found.values()];
}

/** Copies `from` to `to` recursively, skipping what `skip` says (paths relative to `root`). */
async function copyTree(
  from: string,
  to: string,
  skip: (rel: string) => boolean = () => false,
  root = from,
): Promise<void> {
  const info = await Deno.stat(from);
  if (info.isFile) {
    await Deno.mkdir(dirname(to), { recursive: true });
    await Deno.copyFile(from, to);
    return;
  }
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const source = join(from, entry.name);
    if (skip(relative(root, source))) continue;
    await copyTree(source, join(to, entry.name), skip, root);
  }
}

/** The launcher: the bundle's own deno, its own config, its own node_modules; no network. */
function launcher(bench: boolean): string {
  return `#!/bin/sh
# recsysllm, from the offline bundle: runs the toolkit with the Deno runtime and the npm packages
# shipped beside this script (app/node_modules); needs no network and no Deno cache. Deno's
# transpile cache goes to DENO_DIR (default ~/.cache/deno). Usage: recsysllm COMMAND [flags]
set -e
self=$(readlink -f "$0" 2>/dev/null || echo "$0")
here=$(cd "$(dirname "$self")" && pwd)
export DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1
run() {
  exec "$here/bin/deno" run -A --no-remote --node-modules-dir=manual \\
    --config "$here/app/deno.json" "$@"
}
case "$1" in
  setup-cuda) shift; run "$here/app/tools/setup_cuda.ts" "$@" ;;${
    bench ? `\n  bench) shift; run "$here/app/bench/main.ts" "$@" ;;` : ""
  }
  *) run "$here/app/main.ts" "$@" ;;
esac
`;
}

/** Runs `cmd` in the repository's root (wherever this script was started from). */
async function sh(cmd: string, args: string[], env?: Record<string, string>): Promise<void> {
  const out = await new Deno.Command(cmd, {
    args,
    env,
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) fail(`${cmd} ${args.join(" ")} failed (exit ${out.code})`);
}

const started = performance.now();

/** A progress line on stderr: `bundle: MESSAGE [12.3s]`. */
function say(message: string): void {
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.error(`bundle: ${message} [${seconds}s]`);
}

/**
 * Runs `work`, saying `message` at once and again every 5 seconds until it ends (with what
 * `more` adds then, e.g. the bytes written so far): packing with xz takes minutes.
 */
async function withHeartbeat<T>(
  message: string,
  work: () => Promise<T>,
  more: () => Promise<string> = () => Promise.resolve(""),
): Promise<T> {
  say(message);
  const timer = setInterval(async () => say(`${message}${await more().catch(() => "")}`), 5000);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** The parsed command line of `deno task bundle`. */
type BundleArgs = ReturnType<typeof parseBundleArgs>;

/** Parses the flags; an unknown or malformed one is a usage error (exit 2). */
function parseBundleArgs(args: string[]) {
  try {
    return parseArgs({
      args,
      options: {
        out: { type: "string" },
        compression: { type: "string", default: "xz" },
        deno: { type: "string" },
        bench: { type: "boolean", default: false },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }).values;
  } catch (error) {
    fail(`${(error as Error).message.split("\n")[0]} (see --help)`, 2);
  }
}

/** What the bundle is made of and where it goes, checked before anything is copied. */
interface BundlePlan {
  /** `recsysllm-VERSION-linux-x64`: the archive's top folder. */
  name: string;
  out: string;
  compression: "xz" | "gzip" | "none";
  denoBinary: string;
  /** The version of `denoBinary` (the shipped runtime), as it reports it. */
  denoVersion: string;
  bench: boolean;
  /** The repository's deno.json. */
  config: { version: string; imports: Record<string, string> };
}

/** Stage 1: the archive's name, path and compression and the deno binary, from the flags. */
async function bundlePlan(values: BundleArgs): Promise<BundlePlan> {
  const compression = values.compression;
  const suffix = { xz: ".tar.xz", gzip: ".tar.gz", none: ".tar" }[compression];
  if (!suffix) fail(`--compression: "${compression}" is not one of xz, gzip, none`, 2);
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const name = `recsysllm-${config.version}-linux-x64`;
  // Absolute: tar runs in the repository's root, not where this script was started.
  const out = values.out ? resolve(values.out) : join(ROOT, "dist", `${name}${suffix}`);
  const denoBinary = values.deno ?? Deno.execPath();
  if (!values.deno && (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64")) {
    fail("not on linux-x64: give --deno the linux-x64 deno binary (npm: @deno/linux-x64-glibc)");
  }
  if (basename(denoBinary).startsWith("recsysllm")) {
    fail("--deno: this is a compiled recsysllm, not a deno binary");
  }
  return {
    name,
    out,
    compression: compression as BundlePlan["compression"],
    denoBinary,
    denoVersion: values.deno ? await shippedDenoVersion(values.deno) : Deno.version.deno,
    bench: values.bench,
    config,
  };
}

/**
 * The version of the deno binary `--deno` names, checked before anything is staged: a linux
 * executable, which on linux-x64 must also answer `--version` (elsewhere it cannot run here:
 * "not run").
 */
async function shippedDenoVersion(path: string): Promise<string> {
  let head: Uint8Array;
  try {
    const file = await Deno.open(path, { read: true });
    try {
      if (!(await file.stat()).isFile) fail(`--deno ${path}: not a file`);
      head = new Uint8Array(4);
      await file.read(head);
    } finally {
      file.close();
    }
  } catch (error) {
    if (error instanceof Failure) throw error;
    fail(`--deno ${path}: cannot read it (${(error as Error).message.split("\n")[0]})`);
  }
  if (String.fromCharCode(...head) !== "\x7fELF") {
    fail(`--deno ${path}: not a linux executable (no ELF header)`);
  }
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") return "not run";
  let stdout = "";
  try {
    const out = await new Deno.Command(path, { args: ["--version"], stderr: "null" }).output();
    stdout = new TextDecoder().decode(out.stdout);
  } catch (error) {
    fail(`--deno ${path}: does not run (${(error as Error).message.split("\n")[0]})`);
  }
  const version = /^deno (\S+)/.exec(stdout)?.[1];
  if (!version) fail(`--deno ${path}: "--version" does not name a deno version`);
  return version;
}

/** Stage 2a: the toolkit's sources into `app/`; with --bench also `bench/` and the Beauty data. */
async function stageSources(stage: string, bench: boolean): Promise<void> {
  const app = join(stage, "app");
  for (const path of APP_PATHS) {
    // The demo data's generator is not needed at run time (its output is in fixtures/demo).
    await copyTree(join(ROOT, path), join(app, path), (rel) => join(path, rel) === DEMO_GENERATOR);
  }
  if (bench) {
    await copyTree(join(ROOT, "bench"), join(app, "bench"));
    // bench/infer.ts reads ../../shared/data/amazon-beauty from bench/.
    const beauty = join(ROOT, "..", "shared", "data", "amazon-beauty");
    if (!(await exists(beauty))) fail(`--bench: ${beauty} not found`);
    await copyTree(beauty, join(stage, "shared", "data", "amazon-beauty"));
  }
}

/**
 * Stage 2b: the npm packages into `app/node_modules` (onnxruntime's linux-x64 binaries only) and
 * the `deno.json` and `package.json` that resolve them there. Returns the packages' versions.
 */
async function stagePackages(
  stage: string,
  packages: Package[],
  config: BundlePlan["config"],
): Promise<Record<string, string>> {
  const app = join(stage, "app");
  for (const pkg of packages) {
    // Of onnxruntime-node's binaries only linux/x64's; nothing of its install script's.
    const skip = (rel: string) =>
      (rel.startsWith("bin/napi-v6/") && rel.split("/").length === 3 &&
        !rel.endsWith("/linux")) ||
      rel === "bin/napi-v6/linux/arm64" || rel === "script" || rel === "node_modules";
    await copyTree(pkg.dir, join(app, "node_modules", pkg.name), skip);
  }
  const appConfig = {
    version: config.version,
    nodeModulesDir: "manual",
    imports: config.imports,
  };
  await Deno.writeTextFile(join(app, "deno.json"), JSON.stringify(appConfig, null, 2) + "\n");
  const dependencies = Object.fromEntries(packages.map((p) => [p.name, p.version]));
  await Deno.writeTextFile(
    join(app, "package.json"),
    JSON.stringify({ private: true, dependencies }, null, 2) + "\n",
  );
  return dependencies;
}

/** Stage 2c: the Deno runtime as `bin/deno` and the `recsysllm` launcher, both executable. */
async function stageLauncher(stage: string, denoBinary: string, bench: boolean): Promise<void> {
  await Deno.mkdir(join(stage, "bin"));
  await Deno.copyFile(denoBinary, join(stage, "bin", "deno"));
  await Deno.chmod(join(stage, "bin", "deno"), 0o755);
  await Deno.writeTextFile(join(stage, "recsysllm"), launcher(bench), { mode: 0o755 });
  await Deno.chmod(join(stage, "recsysllm"), 0o755);
}

/**
 * The modification time every file of the archive gets, in Unix seconds: SOURCE_DATE_EPOCH (the
 * reproducible-builds convention) where set, else a fixed date, so that two builds of one tree are
 * the same bytes (the staged copies are new files; the launcher caches a payload by its hash).
 */
function archiveTime(): number {
  const set = Deno.env.get("SOURCE_DATE_EPOCH");
  if (set !== undefined && /^\d+$/.test(set)) return Number(set);
  return Date.UTC(2026, 0, 1) / 1000;
}

/**
 * Stage 3: `stageRoot/name` packed into `out` (reproducible: root owner, sorted names, one
 * modification time, no gzip timestamp), written as `out.partial` and renamed when complete.
 * Returns the archive's size in bytes.
 */
async function packArchive(stageRoot: string, plan: BundlePlan): Promise<number> {
  const { name, out, compression } = plan;
  await Deno.mkdir(dirname(out), { recursive: true });
  const partial = `${out}.partial`;
  const flag = { xz: ["-J"], gzip: ["-z"], none: [] }[compression]!;
  const written = async () => `: ${((await Deno.stat(partial)).size / 2 ** 20).toFixed(1)} MB`;
  await withHeartbeat(`packing ${name} (${compression})`, () =>
    sh(
      "tar",
      [
        "-c",
        ...flag,
        "-f",
        partial,
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--sort=name",
        `--mtime=@${archiveTime()}`,
        "-C",
        stageRoot,
        name,
      ],
      { XZ_OPT: "-6 -T0", GZIP: "-9 -n" },
    ), written);
  await Deno.rename(partial, out);
  return (await Deno.stat(out)).size;
}

/** Plans, stages in a temporary folder (always removed), packs, and reports one JSON line. */
async function main(): Promise<void> {
  const values = parseBundleArgs(Deno.args);
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const plan = await bundlePlan(values);
  const { name, out, compression } = plan;

  // The npm packages are installed into node_modules when missing (from the registry or the
  // Deno cache); nothing else is fetched.
  await withHeartbeat(
    "installing the npm packages (deno install)",
    () => sh(Deno.execPath(), ["install", "--quiet"]),
  );
  const packages = await runtimePackages(plan.config.imports);

  const stageRoot = await Deno.makeTempDir({ prefix: "recsysllm-bundle-" });
  try {
    const stage = join(stageRoot, name);
    const dependencies = await withHeartbeat(
      "copying the toolkit, packages and runtime",
      async () => {
        await stageSources(stage, plan.bench);
        const dependencies = await stagePackages(stage, packages, plan.config);
        await stageLauncher(stage, plan.denoBinary, plan.bench);
        return dependencies;
      },
    );
    const bytes = await packArchive(stageRoot, plan);
    const mb = (n: number) => Math.round(n / 1024 / 1024 * 10) / 10;
    console.log(JSON.stringify({
      bundle: out,
      bytes,
      mb: mb(bytes),
      limit_mb: mb(LIMIT_BYTES),
      compression,
      bench: plan.bench,
      deno: plan.denoVersion,
      packages: dependencies,
      seconds: Math.round((performance.now() - started) / 100) / 10,
    }));
    if (compression === "xz" && !plan.bench && bytes > LIMIT_BYTES) {
      fail(`${out} is ${mb(bytes)} MB, over the ${mb(LIMIT_BYTES)} MB limit`);
    }
  } finally {
    await Deno.remove(stageRoot, { recursive: true });
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    if (!(error instanceof Failure)) throw error;
    console.error(`bundle: ${error.message}`);
    Deno.exit(error.code);
  }
}
