/**
 * Textualized datasets: the format every later stage reads (`types.ts`: records, the entity pool,
 * candidate lists, the manifest), reading a dataset directory (`dataset.ts`), and `textualize`
 * end to end, from an input in any supported format to a dataset directory (`textualize.ts`).
 *
 * @example
 * ```ts
 * import { openDataset, readRecords } from "./mod.ts";
 *
 * const data = await openDataset("beauty");
 * for await (const record of readRecords(data, "test")) console.log(record.id, record.task);
 * ```
 *
 * @module
 */

export * from "./types.ts";
export * from "./dataset.ts";
export { textualize, type TextualizeRun, type TextualizeSummary } from "./textualize.ts";
export type { Progress, ProgressOptions } from "../io/progress.ts";
export type { ReadOptions } from "./readers/read.ts";
export type { TabularOptions } from "./readers/csv.ts";
export type { ItemTokenMode, RecordOptions, TrainThrough } from "./record_options.ts";
export { ITEM_TOKEN_MODES } from "./record_options.ts";
export type { WindowOptions } from "./profile.ts";
export type { Shard } from "../shard/shard.ts";
export type { LogChecks, TimeUnit } from "./log.ts";
