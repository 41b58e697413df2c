/**
 * `pretrain --merge` for the decoder families: the base weights with the adapter merged in
 * (W + (alpha / r) B A), written as a model directory in the Hugging Face layout that this toolkit
 * and transformers both read: the special-token rows joined onto `model.embed_tokens.weight` (and
 * an untied `lm_head.weight`) with `vocab_size` grown to match, the trained intra-position table
 * as the extra tensor `model.intra_position_embeddings.weight` (transformers ignores it with a
 * warning), and the attention rule under `recsysllm` in `config.json`. Float32, so the merge is
 * not rounded again.
 *
 * @module
 */

import { join } from "node:path";
import { buildDirAtomic } from "../../io/atomic.ts";
import type { Weights } from "../weights.ts";
import { writeCheckpoint } from "./checkpoint.ts";
import { type DecoderConfig, decoderWeightShapes, INTRA_TABLE } from "./config.ts";
import { ADDED_ROWS, type AttentionMode } from "./decoder.ts";
import { decoderConfigJson } from "./registry.ts";

function joinRows(table: Float32Array, added: Float32Array | undefined): Float32Array {
  if (!added || added.length === 0) return table;
  const out = new Float32Array(table.length + added.length);
  out.set(table);
  out.set(added, table.length);
  return out;
}

/** Writes the merged model directory `dir` (replaced atomically). */
export async function writeMergedDecoder(
  dir: string,
  config: DecoderConfig,
  merged: Weights,
  options: { addedRows: number; attention: AttentionMode; tokenizerFile: string },
): Promise<DecoderConfig> {
  const grown: DecoderConfig = {
    ...config,
    vocabSize: config.vocabSize + options.addedRows,
    attention: options.attention,
  };
  const tensor = (name: string): Float32Array => {
    if (name === "model.embed_tokens.weight") {
      return joinRows(merged.get(name)!, merged.get(ADDED_ROWS.embed));
    }
    if (name === "lm_head.weight") return joinRows(merged.get(name)!, merged.get(ADDED_ROWS.head));
    const data = merged.get(name);
    if (!data) throw new Error(`writeMergedDecoder: weight ${name} is missing`);
    return data;
  };
  const sources = [...decoderWeightShapes(grown)].map(([name, shape]) => ({
    name,
    shape,
    data: () => tensor(name),
  }));
  const intra = merged.get(INTRA_TABLE);
  if (intra) {
    sources.push({
      name: INTRA_TABLE,
      shape: [config.intraRows, config.hiddenSize],
      data: () => intra,
    });
  }
  await buildDirAtomic(dir, async (tmp) => {
    await Deno.writeTextFile(
      join(tmp, "config.json"),
      JSON.stringify(decoderConfigJson(grown), null, 2) + "\n",
    );
    await Deno.copyFile(options.tokenizerFile, join(tmp, "tokenizer.json"));
    await writeCheckpoint(tmp, sources, { format: "F32" });
  });
  return grown;
}
