/**
 * Where the tokenizer engine (`npm:@huggingface/tokenizers` 0.2.0) reads a `tokenizer.json`
 * differently from the Hugging Face `tokenizers` library (Rust), which is how a pretrained
 * model's own texts were tokenized, and the parts that make the two agree. Found by encoding and
 * decoding the same 18,137 texts (Beauty's titles, Musical Instruments' reviews, edge cases) with
 * both (the Rust library 0.23.2 through Python, 2026-12-07): Qwen3's, Llama 3's and Llama 2's
 * files agreed everywhere; these three parts, which none of those files uses, did not.
 *
 * - A Metaspace pre-tokenizer with `split` true (also when the file does not say: the Rust
 *   library's default) cuts the text before every `▁`, so no token spans two words: `"a  b"` is
 *   `▁a`, `▁`, `▁b`, never `▁a`, `▁▁b`. The engine never cut.
 * - A ByteFallback decoder turns a run of byte tokens (`<0xE2>`) that is not valid UTF-8 into one
 *   U+FFFD per byte; the engine gave one per invalid sequence.
 * - A Metaspace decoder drops every `▁` of the first token unless its `prepend_scheme` is
 *   `never`, and reads the others as spaces; the engine dropped one leading space of the first
 *   token whatever the scheme.
 *
 * @module
 */

import {
  ByteFallbackDecoder,
  type Decoder,
  MetaspaceDecoder,
  MetaspacePreTokenizer,
  type PreTokenizer,
  SequenceDecoder,
  SequencePreTokenizer,
  type Tokenizer,
} from "@huggingface/tokenizers";

/** A `tokenizer.json` node: `type` and its settings. */
type Node = Record<string, unknown>;

const isNode = (x: unknown): x is Node => typeof x === "object" && x !== null;

/** The Rust library's reading of a Metaspace node's scheme (`add_prefix_space` is the older key). */
function prependSchemeOf(node: Node): "always" | "first" | "never" {
  const scheme = node.prepend_scheme;
  if (scheme === "always" || scheme === "first" || scheme === "never") return scheme;
  return node.add_prefix_space === false ? "never" : "always";
}

/**
 * `text` cut before every `replacement` after its first character, each piece keeping its mark
 * (the Rust library's `MergedWithNext`).
 *
 * @example
 * ```ts
 * splitBeforeMarks("▁Hey▁▁▁friend!", "▁"); // ["▁Hey", "▁", "▁", "▁friend!"]
 * ```
 */
export function splitBeforeMarks(text: string, replacement: string): string[] {
  const pieces: string[] = [];
  let start = 0;
  for (let at = text.indexOf(replacement, 1); at > 0; at = text.indexOf(replacement, at + 1)) {
    if (at > start) pieces.push(text.slice(start, at));
    start = at;
  }
  if (start < text.length) pieces.push(text.slice(start));
  return pieces;
}

/** Metaspace as the Rust library pre-tokenizes: the engine's, then the split. */
class RustMetaspacePreTokenizer extends MetaspacePreTokenizer {
  readonly #split: boolean;

  constructor(node: Node) {
    super({ type: "Metaspace", ...node, prepend_scheme: prependSchemeOf(node) });
    this.#split = node.split !== false;
  }

  override pre_tokenize_text(
    text: string,
    options?: Parameters<PreTokenizer["pre_tokenize_text"]>[1],
  ): string[] {
    const pieces = super.pre_tokenize_text(text, options);
    return this.#split ? pieces.flatMap((p) => splitBeforeMarks(p, this.replacement)) : pieces;
  }
}

/** ByteFallback as the Rust library decodes: an invalid run of bytes is a U+FFFD per byte. */
class RustByteFallbackDecoder extends ByteFallbackDecoder {
  override decode_chain(tokens: string[]): string[] {
    const out: string[] = [];
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length === 0) return;
      try {
        out.push(new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bytes)));
      } catch {
        out.push("\uFFFD".repeat(bytes.length));
      }
      bytes = [];
    };
    for (const token of tokens) {
      const byte = /^<0x[0-9A-Fa-f]{2}>$/.test(token) ? parseInt(token.slice(3, 5), 16) : -1;
      if (byte >= 0) {
        bytes.push(byte);
      } else {
        flush();
        out.push(token);
      }
    }
    flush();
    return out;
  }
}

/** Metaspace as the Rust library decodes: the first token's marks dropped unless `never`. */
class RustMetaspaceDecoder extends MetaspaceDecoder {
  readonly #dropFirst: boolean;

  constructor(node: Node) {
    super({ type: "Metaspace", ...node } as ConstructorParameters<typeof MetaspaceDecoder>[0]);
    this.#dropFirst = prependSchemeOf(node) !== "never";
  }

  override decode_chain(tokens: string[]): string[] {
    return tokens.map((token, i) =>
      token.replaceAll(this.replacement, i === 0 && this.#dropFirst ? "" : " ")
    );
  }
}

function preTokenizerFor(node: unknown, built: PreTokenizer | null): PreTokenizer | null {
  if (!isNode(node) || built === null) return built;
  if (node.type === "Metaspace" && built instanceof MetaspacePreTokenizer) {
    return new RustMetaspacePreTokenizer(node);
  }
  if (node.type === "Sequence" && built instanceof SequencePreTokenizer) {
    const children = Array.isArray(node.pretokenizers) ? node.pretokenizers : [];
    built.tokenizers = built.tokenizers.map((child, i) => preTokenizerFor(children[i], child));
  }
  return built;
}

function decoderFor(node: unknown, built: Decoder): Decoder {
  if (!isNode(node)) return built;
  let fixed = built;
  if (node.type === "ByteFallback" && built instanceof ByteFallbackDecoder) {
    fixed = new RustByteFallbackDecoder({ type: "ByteFallback" });
  } else if (node.type === "Metaspace" && built instanceof MetaspaceDecoder) {
    fixed = new RustMetaspaceDecoder(node);
  } else if (node.type === "Sequence" && built instanceof SequenceDecoder) {
    const children = Array.isArray(node.decoders) ? node.decoders : [];
    built.decoders = built.decoders.map((child, i) => decoderFor(children[i], child));
  }
  // What the engine set on the decoder it built (added tokens, a suffix) stays.
  fixed.added_tokens = built.added_tokens;
  fixed.end_of_word_suffix = built.end_of_word_suffix;
  return fixed;
}

/**
 * Makes `engine`, built from `json`, pre-tokenize and decode as the Rust library does where the
 * two differ (this module's list); everything else is left as built.
 */
export function matchRustLibrary(engine: Tokenizer, json: unknown): void {
  if (!isNode(json)) return;
  engine.pre_tokenizer = preTokenizerFor(json.pre_tokenizer, engine.pre_tokenizer);
  if (engine.decoder) engine.decoder = decoderFor(json.decoder, engine.decoder);
}
