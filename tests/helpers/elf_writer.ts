/**
 * Writes minimal 64-bit little-endian ELF shared objects (one PT_LOAD segment, a PT_DYNAMIC with
 * DT_NEEDED / DT_SONAME / DT_RUNPATH entries and their string table, an empty symbol table and
 * hash table, PT_GNU_STACK) for the tests of
 * `lib/runtime/shared_libraries.ts`: a provider library that needs something absent, without
 * downloading the 230 MB CUDA provider. The layout is the standard one, so `readelf -d` reads
 * them, and complete enough that glibc's `dlopen` maps one and then fails cleanly on a missing
 * DT_NEEDED library (without a symbol and hash table it would crash while mapping it).
 *
 * @module
 */

/** The dynamic entries to write. */
export interface ElfSpec {
  needed: string[];
  soname?: string;
  runpath?: string;
}

const BASE = 0x400000;

/** The bytes of a shared object declaring `spec`. */
export function elfSharedObject(spec: ElfSpec): Uint8Array {
  const strings: number[] = [0];
  const offsets = new Map<string, number>();
  const add = (s: string) => {
    if (!offsets.has(s)) {
      offsets.set(s, strings.length);
      strings.push(...new TextEncoder().encode(s), 0);
    }
    return offsets.get(s)!;
  };
  const entries: [number, number][] = spec.needed.map((n) => [1, add(n)]);
  if (spec.soname) entries.push([14, add(spec.soname)]);
  if (spec.runpath) entries.push([29, add(spec.runpath)]);
  const PHNUM = 3;
  const symOff = 64 + PHNUM * 56; // one null symbol (24 bytes)
  const hashOff = symOff + 24; // SysV hash: nbucket 1, nchain 1, bucket[0] 0, chain[0] 0
  const strOff = hashOff + 16;
  const dynOff = Math.ceil((strOff + strings.length) / 8) * 8;
  entries.push(
    [4, BASE + hashOff], // DT_HASH
    [6, BASE + symOff], // DT_SYMTAB
    [11, 24], // DT_SYMENT
    [5, BASE + strOff], // DT_STRTAB
    [10, strings.length], // DT_STRSZ
    [0, 0],
  );
  const size = dynOff + entries.length * 16;
  const bytes = new Uint8Array(size);
  const v = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0); // magic, 64-bit, little-endian, version 1
  v.setUint16(16, 3, true); // ET_DYN
  v.setUint16(18, 62, true); // x86-64
  v.setUint32(20, 1, true);
  v.setBigUint64(32, 64n, true); // e_phoff
  v.setUint16(52, 64, true); // e_ehsize
  v.setUint16(54, 56, true); // e_phentsize
  v.setUint16(56, PHNUM, true); // e_phnum
  const header = (at: number, type: number, flags: number, offset: number, length: number) => {
    v.setUint32(at, type, true);
    v.setUint32(at + 4, flags, true);
    v.setBigUint64(at + 8, BigInt(offset), true);
    v.setBigUint64(at + 16, BigInt(BASE + offset), true);
    v.setBigUint64(at + 24, BigInt(BASE + offset), true);
    v.setBigUint64(at + 32, BigInt(length), true);
    v.setBigUint64(at + 40, BigInt(length), true);
    v.setBigUint64(at + 48, type === 1 ? 0x1000n : 8n, true);
  };
  header(64, 1, 4, 0, size); // PT_LOAD of the whole file, readable
  header(64 + 56, 2, 4, dynOff, entries.length * 16); // PT_DYNAMIC
  header(64 + 112, 0x6474e551, 6, 0, 0); // PT_GNU_STACK: not executable
  v.setUint32(hashOff, 1, true);
  v.setUint32(hashOff + 4, 1, true);
  bytes.set(strings, strOff);
  entries.forEach(([tag, value], i) => {
    v.setBigInt64(dynOff + i * 16, BigInt(tag), true);
    v.setBigUint64(dynOff + i * 16 + 8, BigInt(value), true);
  });
  return bytes;
}
