/**
 * Files that never cost a user their data: atomic writes (`atomic.ts`), outputs claimed before
 * they are replaced (`safe_output.ts`), locks on outputs (`lock.ts`), temporaries removed on
 * interrupt (`cleanup.ts`), file-system faults as one-line errors (`io_error.ts`, `fs.ts`),
 * streaming lines of plain or gzip files (`lines.ts`), a buffered writer for large outputs
 * (`text_writer.ts`), and progress on stderr (`progress.ts`). Fault injection (`fault.ts`) is
 * for tests and not part of this module.
 *
 * @module
 */

export * from "./atomic.ts";
export { InputError } from "../errors.ts";
export * from "./cleanup.ts";
export * from "./fs.ts";
export * from "./io_error.ts";
export * from "./lines.ts";
export * from "./lock.ts";
export * from "./progress.ts";
export * from "./safe_output.ts";
export * from "./text_writer.ts";
