/**
 * Where the tokenizer engine (`npm:@huggingface/tokenizers` 0.2.0) reads a `tokenizer.json`
 * differently from the Hugging Face `tokenizers` library (Rust), which is how a pretrained
 * model's own texts were tokenized, and the parts that make the two agree. Found by encoding and
 * decoding the same 18,140 texts (Beauty's titles, Musical Instruments' reviews, edge cases) with
 * both (the Rust library 0.23.2 through Python, 2026-12-07; `deno task bench tokenizer_parity`):
 * Qwen3's, Llama 3's and Llama 2's files agreed everywhere but in ByteFallback's invalid bytes;
 * the other parts below, which none of those files uses, did not either.
 *
 * - A Metaspace pre-tokenizer with `split` true (also when the file does not say: the Rust
 *   library's default) cuts the text before every `▁`, so no token spans two words: `"a  b"` is
 *   `▁a`, `▁`, `▁b`, never `▁a`, `▁▁b`. The engine never cut. Under `prepend_scheme: first`
 *   behind a pre-tokenizer that cuts the text first, only a first piece that starts the text
 *   gets the `▁` (the engine gave it every piece). Not made to agree: pieces that a `normalized`
 *   added token cuts out of the text each count as its start under `first`.
 * - A WhitespaceSplit pre-tokenizer splits on Unicode's White_Space characters; the engine also
 *   split on U+FEFF (JavaScript's `\s`).
 * - A ByteFallback decoder turns a run of byte tokens (`<0xE2>`) that is not valid UTF-8 into one
 *   U+FFFD per byte; the engine gave one per invalid sequence (and dropped a leading U+FEFF).
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
  WhitespaceSplitPreTokenizer,
} from "@huggingface/tokenizers";

/** A `tokenizer.json` node: `type` and its settings. */
type Node = Record<string, unknown>;

const isNode = (x: unknown): x is Node => typeof x === "object" && x !== null;

/** The Rust library's reading of a Metaspace node's scheme (`add_prefix_space` is the older key). */
export function prependSchemeOf(node: Record<string, unknown>): "always" | "first" | "never" {
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

  /**
   * Pieces an earlier pre-tokenizer cut: under `first`, only the first piece is the text's start
   * (the engine passed every piece the text's own section index, so each got a `▁`).
   */
  override pre_tokenize(
    text: string | string[],
    options?: Parameters<PreTokenizer["pre_tokenize_text"]>[1],
  ): string[] {
    if (!Array.isArray(text)) return this.pre_tokenize_text(text, options);
    const later = { ...options, section_index: -1 };
    return text.flatMap((piece, i) => this.pre_tokenize_text(piece, i === 0 ? options : later));
  }

  override pre_tokenize_text(
    text: string,
    options?: Parameters<PreTokenizer["pre_tokenize_text"]>[1],
  ): string[] {
    const pieces = super.pre_tokenize_text(text, options);
    return this.#split ? pieces.flatMap((p) => splitBeforeMarks(p, this.replacement)) : pieces;
  }
}

/**
 * The byte a ByteFallback token such as `<0xE2>` stands for; undefined for any other string.
 *
 * @example
 * ```ts
 * byteTokenValue("<0xE2>"); // 226
 * byteTokenValue("▁a"); // undefined
 * ```
 */
export function byteTokenValue(token: string): number | undefined {
  return /^<0x[0-9A-Fa-f]{2}>$/.test(token) ? parseInt(token.slice(3, 5), 16) : undefined;
}

/** Whether `engine` decodes byte tokens (`<0xE2>`) as bytes: its decoder has a ByteFallback. */
export function decodesByteTokens(engine: Tokenizer): boolean {
  const has = (d: Decoder | null | undefined): boolean =>
    d instanceof ByteFallbackDecoder || (d instanceof SequenceDecoder && d.decoders.some(has));
  return has(engine.decoder);
}

/** ByteFallback as the Rust library decodes: an invalid run of bytes is a U+FFFD per byte. */
class RustByteFallbackDecoder extends ByteFallbackDecoder {
  override decode_chain(tokens: string[]): string[] {
    const out: string[] = [];
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length === 0) return;
      try {
        // ignoreBOM: a U+FEFF the bytes spell is text, as Rust's String::from_utf8 keeps it.
        out.push(
          new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(Uint8Array.from(bytes)),
        );
      } catch {
        out.push("\uFFFD".repeat(bytes.length));
      }
      bytes = [];
    };
    for (const token of tokens) {
      const byte = byteTokenValue(token);
      if (byte !== undefined) {
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

/**
 * WhitespaceSplit as the Rust library splits: on Unicode's White_Space characters (its
 * `char::is_whitespace`); JavaScript's `\s`, which the engine used, also takes U+FEFF.
 */
class RustWhitespaceSplitPreTokenizer extends WhitespaceSplitPreTokenizer {
  override pre_tokenize_text(text: string): string[] {
    return text.split(/\p{White_Space}+/u).filter((piece) => piece !== "");
  }
}

/**
 * A Sequence that tells each part whether its first piece still starts the text: a piece after
 * whitespace an earlier part dropped is not the text's start (the Rust library's offset 0), so
 * Metaspace's `first` gives it no `▁`.
 */
class RustSequencePreTokenizer extends SequencePreTokenizer {
  override pre_tokenize_text(
    text: string,
    options?: Parameters<PreTokenizer["pre_tokenize_text"]>[1],
  ): string[] {
    return this.tokenizers.reduce((pieces, part) => {
      if (!part) return pieces;
      const atStart = pieces.length > 0 && text.startsWith(pieces[0]);
      return part.pre_tokenize(pieces, atStart ? options : { ...options, section_index: -1 });
    }, [text]);
  }
}

function preTokenizerFor(node: unknown, built: PreTokenizer | null): PreTokenizer | null {
  if (!isNode(node) || built === null) return built;
  if (node.type === "Metaspace" && built instanceof MetaspacePreTokenizer) {
    return new RustMetaspacePreTokenizer(node);
  }
  if (node.type === "WhitespaceSplit" && built instanceof WhitespaceSplitPreTokenizer) {
    return new RustWhitespaceSplitPreTokenizer();
  }
  if (node.type === "Sequence" && built instanceof SequencePreTokenizer) {
    const children = Array.isArray(node.pretokenizers) ? node.pretokenizers : [];
    const fixed = new RustSequencePreTokenizer({ type: "Sequence", pretokenizers: [] });
    fixed.tokenizers = built.tokenizers.map((child, i) => preTokenizerFor(children[i], child));
    return fixed;
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
