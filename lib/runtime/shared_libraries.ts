/**
 * Which shared libraries a Linux ELF object needs and which of them the dynamic loader would not
 * find, so that a GPU provider that cannot load is reported by the name of what is missing
 * (onnxruntime itself only says "Failed to load shared library"). Reads the `DT_NEEDED`,
 * `DT_RPATH` and `DT_RUNPATH` entries of the object's dynamic section (only the headers, the
 * dynamic section and its string table are read, not the whole file: the CUDA provider is 230 MB)
 * and resolves each name the way glibc's loader does: RPATH (when there is no RUNPATH),
 * `LD_LIBRARY_PATH`, RUNPATH (`$ORIGIN` is the object's directory), `/etc/ld.so.cache`, then the
 * default directories; libraries found are followed in turn.
 *
 * @example
 * ```ts
 * const missing = missingLibraries("/opt/ort/libonnxruntime_providers_cuda.so");
 * // [{ name: "libcublas.so.13", neededBy: "libonnxruntime_providers_cuda.so" }, ...]
 * ```
 *
 * @module
 */

import { basename, dirname, join } from "node:path";

/** What the dynamic section of an ELF object declares. */
export interface ElfDynamic {
  /** `DT_NEEDED`: the sonames the object links against, in order. */
  needed: string[];
  /** `DT_SONAME`, where set. */
  soname?: string;
  /** `DT_RPATH` directories (used only where there is no RUNPATH). */
  rpath: string[];
  /** `DT_RUNPATH` directories. */
  runpath: string[];
  /** `e_machine` (62: x86-64, 183: AArch64). */
  machine: number;
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_STRSZ = 10n;
const DT_SONAME = 14n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

/** Reads `length` bytes at `offset` (fewer at the end of the file). */
export type ReadAt = (offset: number, length: number) => Uint8Array;

/**
 * The dynamic section of a 64-bit little-endian ELF object read through `read`. Throws an
 * `Error` naming `label` when the bytes are not such an object or have no dynamic section.
 */
export function parseElfDynamic(read: ReadAt, label: string): ElfDynamic {
  const header = read(0, 64);
  if (
    header.length < 64 || header[0] !== 0x7f || header[1] !== 0x45 || header[2] !== 0x4c ||
    header[3] !== 0x46
  ) {
    throw new Error(`${label}: not an ELF file`);
  }
  if (header[4] !== 2 || header[5] !== 1) {
    throw new Error(`${label}: not a 64-bit little-endian ELF file`);
  }
  const h = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const machine = h.getUint16(18, true);
  const phoff = Number(h.getBigUint64(32, true));
  const phentsize = h.getUint16(54, true);
  const phnum = h.getUint16(56, true);
  const table = read(phoff, phentsize * phnum);
  if (table.length < phentsize * phnum) throw new Error(`${label}: truncated program headers`);
  const t = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const loads: { vaddr: number; offset: number; size: number }[] = [];
  let dynamic: { offset: number; size: number } | undefined;
  for (let i = 0; i < phnum; i++) {
    const at = i * phentsize;
    const type = t.getUint32(at, true);
    const offset = Number(t.getBigUint64(at + 8, true));
    const vaddr = Number(t.getBigUint64(at + 16, true));
    const size = Number(t.getBigUint64(at + 32, true));
    if (type === PT_LOAD) loads.push({ vaddr, offset, size });
    if (type === PT_DYNAMIC) dynamic = { offset, size };
  }
  if (!dynamic) throw new Error(`${label}: no dynamic section (a static executable?)`);
  const entries = read(dynamic.offset, dynamic.size);
  const d = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
  const tags: [bigint, bigint][] = [];
  for (let at = 0; at + 16 <= entries.length; at += 16) {
    const tag = d.getBigInt64(at, true);
    if (tag === DT_NULL) break;
    tags.push([tag, d.getBigUint64(at + 8, true)]);
  }
  const strtab = tags.find(([tag]) => tag === DT_STRTAB)?.[1];
  const strsz = tags.find(([tag]) => tag === DT_STRSZ)?.[1];
  if (strtab === undefined || strsz === undefined) throw new Error(`${label}: no string table`);
  // DT_STRTAB is an address; the PT_LOAD segment that maps it gives its place in the file.
  const segment = loads.find((s) => Number(strtab) >= s.vaddr && Number(strtab) < s.vaddr + s.size);
  if (!segment) throw new Error(`${label}: string table outside every loaded segment`);
  const strings = read(Number(strtab) - segment.vaddr + segment.offset, Number(strsz));
  const text = (offset: bigint) => {
    const start = Number(offset);
    let end = start;
    while (end < strings.length && strings[end] !== 0) end++;
    return new TextDecoder().decode(strings.subarray(start, end));
  };
  const paths = (offset: bigint) => text(offset).split(":").filter(Boolean);
  const result: ElfDynamic = { needed: [], rpath: [], runpath: [], machine };
  for (const [tag, value] of tags) {
    if (tag === DT_NEEDED) result.needed.push(text(value));
    else if (tag === DT_SONAME) result.soname = text(value);
    else if (tag === DT_RPATH) result.rpath.push(...paths(value));
    else if (tag === DT_RUNPATH) result.runpath.push(...paths(value));
  }
  return result;
}

/** {@linkcode parseElfDynamic} of the file at `path`, reading only the parts it needs. */
export function readElfDynamic(path: string): ElfDynamic {
  const file = Deno.openSync(path, { read: true });
  try {
    const read: ReadAt = (offset, length) => {
      const buffer = new Uint8Array(length);
      file.seekSync(offset, Deno.SeekMode.Start);
      let filled = 0;
      while (filled < length) {
        const n = file.readSync(buffer.subarray(filled));
        if (n === null || n === 0) break;
        filled += n;
      }
      return buffer.subarray(0, filled);
    };
    return parseElfDynamic(read, path);
  } finally {
    file.close();
  }
}

/** The directories glibc's loader searches last, on x86-64 and AArch64 Debian-like systems. */
export const DEFAULT_LIBRARY_DIRS = [
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib/aarch64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/lib64",
  "/usr/lib64",
  "/lib",
  "/usr/lib",
];

/** Where libraries are looked for; every field has a default taken from the system. */
export interface SearchPath {
  /** `LD_LIBRARY_PATH` directories (default: the environment's). */
  ldLibraryPath?: string[];
  /** Paths listed in the loader's cache (default: those of `/etc/ld.so.cache`). */
  cache?: string[];
  /** The last directories searched (default {@linkcode DEFAULT_LIBRARY_DIRS}). */
  defaultDirs?: string[];
  /** Sonames already loaded in the process, which need no search (e.g. `libonnxruntime.so.1`). */
  loaded?: string[];
}

/** A library that would not be found, and the object that needs it. */
export interface MissingLibrary {
  name: string;
  neededBy: string;
}

let systemCache: string[] | undefined;

/** The library paths listed in `/etc/ld.so.cache` (empty where there is none). */
export function ldCachePaths(): string[] {
  if (systemCache) return systemCache;
  try {
    // Both cache formats store each library's full path as a NUL-terminated string.
    const text = new TextDecoder("latin1").decode(Deno.readFileSync("/etc/ld.so.cache"));
    systemCache = text.split("\0").filter((s) => s.startsWith("/") && s.includes(".so"));
  } catch {
    systemCache = [];
  }
  return systemCache;
}

function envLibraryPath(): string[] {
  try {
    return (Deno.env.get("LD_LIBRARY_PATH") ?? "").split(":").filter(Boolean);
  } catch {
    return [];
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Where the loader would find `name` for an object in `originDir`, or undefined. */
export function findLibrary(
  name: string,
  object: Pick<ElfDynamic, "rpath" | "runpath">,
  originDir: string,
  search: SearchPath = {},
): string | undefined {
  if (name.includes("/")) return isFile(name) ? name : undefined;
  const origin = (dir: string) => dir.replaceAll(/\$(ORIGIN|\{ORIGIN\})/g, originDir);
  const dirs = [
    ...(object.runpath.length === 0 ? object.rpath.map(origin) : []),
    ...(search.ldLibraryPath ?? envLibraryPath()),
    ...object.runpath.map(origin),
  ];
  for (const dir of dirs) {
    if (isFile(join(dir, name))) return join(dir, name);
  }
  for (const path of search.cache ?? ldCachePaths()) {
    if (basename(path) === name && isFile(path)) return path;
  }
  for (const dir of search.defaultDirs ?? DEFAULT_LIBRARY_DIRS) {
    if (isFile(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * The libraries that loading `path` would need and not find, following every library that is
 * found (a library found can itself need one that is missing). Empty when all resolve.
 */
export function missingLibraries(path: string, search: SearchPath = {}): MissingLibrary[] {
  const missing: MissingLibrary[] = [];
  const seen = new Set<string>(search.loaded ?? []);
  const visited = new Set<string>();
  const visit = (file: string, depth: number) => {
    if (visited.has(file) || depth > 8) return;
    visited.add(file);
    let dynamic: ElfDynamic;
    try {
      dynamic = readElfDynamic(file);
    } catch {
      return; // a linker script or an odd file: the loader's own error will say
    }
    for (const name of dynamic.needed) {
      if (seen.has(name)) continue;
      seen.add(name);
      const found = findLibrary(name, dynamic, dirname(file), search);
      if (found) visit(found, depth + 1);
      else missing.push({ name, neededBy: basename(file) });
    }
  };
  visit(path, 0);
  return missing;
}
