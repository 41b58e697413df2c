/**
 * Tokenizers: a Hugging Face `tokenizer.json` with the method's six special tokens resolved to
 * ids (`tokenizer.ts`), and training a byte-level BPE tokenizer on a corpus (`train_bpe.ts`).
 *
 * @module
 */

export * from "./tokenizer.ts";
export * from "./train_bpe.ts";
