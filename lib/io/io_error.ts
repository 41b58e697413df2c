/**
 * Ordinary file-system faults (disk full, read-only file system, permission denied, a directory
 * where a file is expected, a missing parent directory) as one-line {@linkcode IoError}s that
 * name the path and the cause, so the command line exits 1 with a message instead of reporting
 * them as bugs (exit 70) with a stack trace.
 *
 * Two layers, so that no file-system error can escape as an internal error:
 * - the writers and readers of `lib/io` wrap their operations with {@linkcode withIo}, which adds
 *   the path where Deno's message lacks it (writes on an open file, `fsync`);
 * - `main.ts` passes any error that {@linkcode fsFault} recognises (a `Deno.errors.*` file-system
 *   class, or any error with an errno `code` such as Node's `ErrnoException`) through
 *   {@linkcode toIoError} as a last resort, with the path Deno puts in its messages.
 *
 * @module
 */

import { InputError } from "../errors.ts";

/** What each errno code means to a user (lower case, no trailing period). */
const CAUSES: Record<string, string> = {
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EROFS: "read-only file system",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EISDIR: "is a directory (a file was expected)",
  ENOTDIR: "not a directory (a file is in the way)",
  ENOENT: "no such file or directory",
  EEXIST: "already exists",
  ENOTEMPTY: "directory not empty",
  EBUSY: "resource busy",
  ETXTBSY: "file busy",
  EMFILE: "too many open files",
  ENFILE: "too many open files in the system",
  ENAMETOOLONG: "file name too long",
  ELOOP: "too many levels of symbolic links",
  EXDEV: "on another file system",
  EIO: "input/output error",
  EFBIG: "file too large",
  EPIPE: "broken pipe",
  ENOLCK: "no locks available",
};

/** `Deno.errors` classes that are faults of the environment, with the errno code they stand for. */
const DENO_CLASSES: Record<string, string> = {
  NotFound: "ENOENT",
  PermissionDenied: "EACCES",
  AlreadyExists: "EEXIST",
  IsADirectory: "EISDIR",
  NotADirectory: "ENOTDIR",
  FilesystemLoop: "ELOOP",
  Busy: "EBUSY",
  BrokenPipe: "EPIPE",
  WriteZero: "EIO",
  UnexpectedEof: "EIO",
  NotCapable: "NOTCAPABLE",
};

/** A file-system fault, said in one line: `PATH: CAUSE`. The CLI exits 1. */
export class IoError extends InputError {
  /** The error's name, as stacks show it. */
  override name = "IoError";
  /** The path the fault happened on, when known. */
  readonly path?: string;
  /** The errno code (`ENOSPC`, ...), when known. */
  readonly code?: string;

  /** An error with `message`, and the path and errno code when known. */
  constructor(message: string, path?: string, code?: string, options?: ErrorOptions) {
    super(message, options);
    this.path = path;
    this.code = code;
  }
}

/**
 * The errno code of `error` when it is a file-system fault (a `Deno.errors` class of one, or an
 * error carrying a `code` like `ENOSPC`), else undefined. Programming errors (TypeError, ...)
 * without a code are not faults.
 */
export function fsFault(error: unknown): string | undefined {
  if (!(error instanceof Error) || error instanceof IoError) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && /^E[A-Z0-9]+$/.test(code)) return code;
  for (const [name, errno] of Object.entries(DENO_CLASSES)) {
    const cls = (Deno.errors as unknown as Record<string, unknown>)[name];
    if (typeof cls === "function" && error instanceof (cls as new () => Error)) return errno;
  }
  return undefined;
}

/** The path named in a Deno error message (`... (os error 28): open '/x/y'`), if any. */
function pathInMessage(message: string): string | undefined {
  const match = /\(os error \d+\)(?:: \w+)? '([^']*)'/.exec(message) ??
    /, \w+ '([^']*)'/.exec(message);
  return match?.[1];
}

/** The user-facing cause for `code`, from `message` when the code is unknown. */
function causeOf(code: string, message: string): string {
  if (code === "NOTCAPABLE") return message.split("\n")[0];
  const known = CAUSES[code];
  if (known) return `${known} (${code})`;
  const plain = message.split("\n")[0].replace(/ \(os error \d+\).*$/, "").replace(/^\w+: /, "");
  return `${plain.toLowerCase()} (${code})`;
}

/**
 * `error` as an {@linkcode IoError} naming `path` (or the path in the error itself) and what was
 * being done (`action`, e.g. "cannot write"), when it is a file-system fault; otherwise `error`
 * unchanged. An `ENOENT` while writing says that the directory is missing.
 *
 * @example
 * ```ts
 * try {
 *   await Deno.writeTextFile("/full/disk.txt", "x");
 * } catch (error) {
 *   throw toIoError(error, "/full/disk.txt", "cannot write");
 *   // IoError: /full/disk.txt: cannot write: no space left on device (ENOSPC)
 * }
 * ```
 */
export function toIoError(error: unknown, path?: string, action?: string): unknown {
  const code = fsFault(error);
  if (code === undefined) return error;
  const message = (error as Error).message ?? "";
  const where = path ?? (error as { path?: string }).path ?? pathInMessage(message);
  let cause = causeOf(code, message);
  if (code === "ENOENT" && action?.startsWith("cannot write")) {
    cause = "its directory does not exist (ENOENT)";
  }
  const what = action ? `${action}: ${cause}` : cause;
  return new IoError(where ? `${where}: ${what}` : what, where, code, { cause: error });
}

/**
 * Runs `body`, turning a file-system fault into an {@linkcode IoError} naming `path`.
 *
 * @example
 * ```ts
 * const text = await withIo("items.csv", "cannot read", () => Deno.readTextFile("items.csv"));
 * ```
 */
export async function withIo<T>(path: string, action: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    throw toIoError(error, path, action);
  }
}

/** Synchronous {@linkcode withIo}. */
export function withIoSync<T>(path: string, action: string, body: () => T): T {
  try {
    return body();
  } catch (error) {
    throw toIoError(error, path, action);
  }
}
