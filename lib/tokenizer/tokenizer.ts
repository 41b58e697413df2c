/**
 * The project's tokenizer: a Hugging Face `tokenizer.json` (a real LLM's, or one trained with
 * `train_bpe.ts`) loaded through `npm:@huggingface/tokenizers`, with the six special tokens of the
 * method resolved to ids. The tokenizer itself is never changed (docs/method.md section 4): a
 * special token it lacks is appended after its vocabulary (ids `vocabSize - k .. vocabSize - 1`),
 * so the model's embedding table grows by those rows and nothing else moves.
 *
 * Special tokens and the names accepted for them (first found wins):
 * - `mask` `[MASK]`, `smask` `[sMASK]`, `gmask` `[gMASK]`;
 * - `sop` `[S]` or GLM's `<|startofpiece|>`; `eop` `[E]` or `<|endofpiece|>`;
 * - `pad` `[PAD]`, `<pad>` or `<|endoftext|>`.
 *
 * Encoding never produces special ids: a record's text that happens to contain `[MASK]` is
 * encoded as ordinary text (special added tokens are not split out of text), so data can never
 * inject control tokens. Encodings of repeated strings are cached (entities repeat constantly).
 *
 * Not here: how records are cut into sentences, units and entities; that is
 * `lib/collate/tokenize.ts`.
 *
 * @module
 */

import { Tokenizer } from "@huggingface/tokenizers";
import { inputError } from "../errors.ts";
import {
  byteTokenValue,
  decodesByteTokens,
  matchRustLibrary,
  prependSchemeOf,
} from "./engine_parity.ts";

/** The special tokens of the method, by their canonical names. */
export const SPECIAL_TOKENS = ["[MASK]", "[sMASK]", "[gMASK]", "[S]", "[E]", "[PAD]"] as const;

/** Ids of the special tokens. */
export interface SpecialIds {
  /** `[MASK]`: an entity-level blank, and the answer's blank in task prompts. */
  mask: number;
  /** `[sMASK]`: a sentence-level blank. */
  smask: number;
  /** `[gMASK]`: the document-level blank. */
  gmask: number;
  /** `[S]`: start of a span in part B (GLM's sop). */
  sop: number;
  /** `[E]`: end of a span, the last label of each span (GLM's eop). */
  eop: number;
  /** `[PAD]`: padding on the right of a batch. */
  pad: number;
}

/** Accepted names of each special token, canonical name first. */
const SPECIAL_ALIASES: Record<keyof SpecialIds, string[]> = {
  mask: ["[MASK]"],
  smask: ["[sMASK]"],
  gmask: ["[gMASK]"],
  // GLM-10B writes its span markers <|startofpiece|>/<|endofpiece|>, GLM-4 <sop>/<eop>.
  sop: ["[S]", "<|startofpiece|>", "<sop>"],
  eop: ["[E]", "<|endofpiece|>", "<eop>"],
  pad: ["[PAD]", "<pad>", "<|endoftext|>"],
};

const SPECIAL_KEYS = ["mask", "smask", "gmask", "sop", "eop", "pad"] as const;

/**
 * How a tokenizer marks the space before a word, which decides an entity's canonical encoding
 * (docs/method.md section 4): `byte-level` (GPT-2, Qwen, Llama 3, the toolkit's own BPE): the space
 * is part of the word's first token, so an entity is encoded as `" " + entity`; `metaspace`
 * (SentencePiece-style, Llama 2): the normalizer or pre-tokenizer prepends `▁` to every encoded
 * string, which stands for that space, so an entity is encoded as it is.
 */
export type LeadingSpace = "byte-level" | "metaspace";

/** The {@linkcode LeadingSpace} of a parsed `tokenizer.json`. */
export function leadingSpaceOf(json: unknown): LeadingSpace {
  const prepends = (node: unknown): boolean => {
    if (typeof node !== "object" || node === null) return false;
    const n = node as Record<string, unknown>;
    if (n.type === "Prepend" && n.prepend === "\u2581") return true;
    if (n.type === "Metaspace") return prependSchemeOf(n) !== "never";
    for (const key of ["normalizers", "pretokenizers"]) {
      if (Array.isArray(n[key]) && (n[key] as unknown[]).some(prepends)) return true;
    }
    return false;
  };
  const t = json as { normalizer?: unknown; pre_tokenizer?: unknown };
  return prepends(t?.normalizer) || prepends(t?.pre_tokenizer) ? "metaspace" : "byte-level";
}

/**
 * The names of the special tokens a `tokenizer.json`'s post-processor puts before every text:
 * the leading `SpecialToken` entries of a `TemplateProcessing` template for one sequence (alone,
 * or inside a `Sequence` of post-processors). Llama 2 and Mistral put `<s>`, Llama 3
 * `<|begin_of_text|>`, GLM-4 `[gMASK]` and `<sop>`; Qwen and the toolkit's own BPE put none.
 * A pretrained model has seen them at the start of every text it learned from.
 *
 * @example
 * ```ts
 * textPrefixOf({
 *   post_processor: {
 *     type: "TemplateProcessing",
 *     single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
 *   },
 * }); // ["<s>"]
 * ```
 */
export function textPrefixOf(json: unknown): string[] {
  const names: string[] = [];
  for (const piece of templateOf(json)?.single ?? []) {
    const special = (piece as { SpecialToken?: { id?: unknown } } | null)?.SpecialToken;
    if (typeof special?.id !== "string") break; // the text itself ($A) comes next
    names.push(special.id);
  }
  return names;
}

/** A `TemplateProcessing` post-processor: its template for one text, and its tokens' ids. */
interface Template {
  single: unknown[];
  special_tokens?: Record<string, { ids?: unknown } | undefined>;
}

/** The `TemplateProcessing` of a `tokenizer.json`'s post-processor (alone or in a `Sequence`). */
function templateOf(json: unknown): Template | undefined {
  const find = (node: unknown): Template | undefined => {
    if (typeof node !== "object" || node === null) return undefined;
    const n = node as { type?: unknown; single?: unknown; processors?: unknown };
    if (n.type === "Sequence" && Array.isArray(n.processors)) {
      for (const child of n.processors) {
        const found = find(child);
        if (found) return found;
      }
    }
    return n.type === "TemplateProcessing" && Array.isArray(n.single)
      ? node as Template
      : undefined;
  };
  return find((json as { post_processor?: unknown } | null)?.post_processor);
}

/** What {@linkcode TextTokenizer.encodeFollowing} encodes text behind: a line break. */
const FOLLOWING_ANCHOR = "\n";

/** Most distinct strings kept in the encoding cache before the oldest are dropped. */
const CACHE_LIMIT = 200_000;

/**
 * Ids a tokenizer may leave unused below its highest, beyond as many as it uses (real
 * vocabularies are dense; some reserve a few ids).
 */
const UNUSED_IDS_ALLOWED = 1024;

/** The `model.type` values the tokenizer engine implements. */
const MODEL_TYPES = ["BPE", "WordPiece", "Unigram"] as const;

function isTokenId(id: unknown): id is number {
  return Number.isInteger(id) && (id as number) >= 0 && (id as number) < 2 ** 31;
}

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
}

/**
 * A loaded tokenizer with the method's special tokens.
 *
 * @example
 * ```ts
 * const tokenizer = await TextTokenizer.load("fixtures/tokenizer/tokenizer.json");
 * const ids = tokenizer.encode(" OPI Nail Lacquer"); // Int32Array, no special tokens added
 * tokenizer.decode(ids); // " OPI Nail Lacquer"
 * tokenizer.tokenString(tokenizer.special.mask); // "[MASK]"
 * ```
 */
export class TextTokenizer {
  /** Ids of `[MASK] [sMASK] [gMASK] [S] [E] [PAD]`. */
  readonly special: Readonly<SpecialIds>;
  /** Number of ids, including special tokens appended after the tokenizer's own vocabulary. */
  readonly vocabSize: number;
  /**
   * Ids the `tokenizer.json` itself defines (its highest id + 1): the special tokens it lacks, and
   * entity tokens, come after them. A checkpoint's embedding rows past these are padding no
   * token of this tokenizer reaches (lib/model/load_any.ts).
   */
  readonly definedIds: number;
  /** Where the tokenizer came from, for messages. */
  readonly source: string;
  /** How it marks a word's leading space (decides the entities' canonical encoding). */
  readonly leadingSpace: LeadingSpace;
  /**
   * The ids the tokenizer puts before every text ({@linkcode textPrefixOf}; Llama's `<s>`), empty
   * where it puts none. Every example and prompt starts with them (docs/method.md section 4), as
   * every text the pretrained model learned from did. Never modify it.
   */
  readonly prefix: Int32Array;
  /**
   * Entity tokens ({@linkcode TextTokenizer.withEntityTokens}): the id of the token each of
   * these entities starts with; undefined when there are none.
   */
  readonly entityTokens?: ReadonlyMap<string, number>;
  /** With entity tokens: whether the entity's own text follows its token (else the token alone). */
  readonly entityTitles: boolean;

  readonly #engine: Tokenizer;
  readonly #strings: string[];
  readonly #isSpecial: Uint8Array;
  readonly #cache = new Map<string, Int32Array>();
  /** Encodings of text behind other text (metaspace tokenizers only; see encodeFollowing). */
  readonly #followingCache = new Map<string, Int32Array>();
  /** A one-letter token that leads a metaspace decode, and its text (see #decodeAfter). */
  #anchor?: { id: number; text: string } | null;
  /** Whether the decoder reads byte tokens (`<0xE2>`) as bytes; found on first use. */
  #byteTokens?: boolean;

  private constructor(
    engine: Tokenizer,
    strings: string[],
    isSpecial: Uint8Array,
    special: SpecialIds,
    source: string,
    leadingSpace: LeadingSpace,
    definedIds: number,
    prefix: Int32Array,
    entities?: { tokens: ReadonlyMap<string, number>; titles: boolean },
  ) {
    this.definedIds = definedIds;
    this.prefix = prefix;
    this.#engine = engine;
    this.#strings = strings;
    this.#isSpecial = isSpecial;
    this.special = Object.freeze(special);
    this.vocabSize = strings.length;
    this.source = source;
    this.leadingSpace = leadingSpace;
    this.entityTokens = entities?.tokens;
    this.entityTitles = entities?.titles ?? true;
  }

  /**
   * A copy of this tokenizer with one new token per entry, appended after every id it has
   * (special tokens included), in the entries' order: entry i gets id `vocabSize + i`, named
   * `name` (shown by `decode`, which treats the new tokens as special: text never encodes to
   * them). `lib/collate/tokenize.ts` starts each of these entities with its token, followed by
   * its text unless `titles` is false (docs/method.md section 13). A repeated entity is a
   * RangeError.
   *
   * @example
   * ```ts
   * declare const base: TextTokenizer;
   * const items = base.withEntityTokens([{ entity: "Nail Lacquer", name: "<item:17>" }], {
   *   titles: true,
   * });
   * items.entityTokens?.get("Nail Lacquer") === base.vocabSize; // true
   * ```
   */
  withEntityTokens(
    entries: readonly { entity: string; name: string }[],
    options: { titles: boolean },
  ): TextTokenizer {
    if (this.entityTokens) throw new RangeError(`${this.source}: already has entity tokens`);
    const strings = this.#strings.slice();
    const tokens = new Map<string, number>();
    for (const { entity, name } of entries) {
      if (tokens.has(entity)) throw new RangeError(`entity "${entity}" is listed twice`);
      tokens.set(entity, strings.length);
      strings.push(name);
    }
    const isSpecial = new Uint8Array(strings.length);
    isSpecial.set(this.#isSpecial);
    isSpecial.fill(1, this.#strings.length);
    return new TextTokenizer(
      this.#engine,
      strings,
      isSpecial,
      { ...this.special },
      this.source,
      this.leadingSpace,
      this.definedIds,
      this.prefix,
      { tokens, titles: options.titles },
    );
  }

  /**
   * Loads `path` (a `tokenizer.json`). A missing, unreadable or invalid file is an InputError
   * naming it.
   */
  static async load(path: string): Promise<TextTokenizer> {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw inputError(path, undefined, "tokenizer file not found");
      }
      throw inputError(path, undefined, `cannot read tokenizer: ${(error as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw inputError(path, undefined, `not valid JSON (${(error as Error).message})`);
    }
    return TextTokenizer.fromJson(json, path);
  }

  /**
   * Builds a tokenizer from a parsed `tokenizer.json` object (e.g. straight from
   * `trainByteLevelBpe`). `source` names it in error messages.
   */
  static fromJson(json: unknown, source = "tokenizer.json"): TextTokenizer {
    const config = json as {
      model?: { vocab?: unknown };
      added_tokens?: AddedTokenJson[];
    };
    if (typeof config !== "object" || config === null || typeof config.model !== "object") {
      throw inputError(source, undefined, "not a tokenizer.json (no model)");
    }
    const type = (config.model as { type?: unknown }).type;
    if (type !== undefined && !(MODEL_TYPES as readonly unknown[]).includes(type)) {
      // The engine would guess a model from the keys instead, and encode with it.
      throw inputError(
        source,
        undefined,
        `model type ${JSON.stringify(type)} is not supported (supported: ` +
          `${MODEL_TYPES.join(", ")})`,
      );
    }
    const added = Array.isArray(config.added_tokens) ? config.added_tokens : [];

    // Every id the tokenizer knows: the model's vocabulary and the added tokens.
    const byString = new Map<string, number>();
    const vocab = config.model.vocab;
    if (Array.isArray(vocab)) {
      // Unigram models list [piece, score] pairs; the id is the position.
      vocab.forEach((entry, i) => byString.set(Array.isArray(entry) ? String(entry[0]) : "", i));
    } else if (typeof vocab === "object" && vocab !== null) {
      for (const [token, id] of Object.entries(vocab as Record<string, unknown>)) {
        if (!isTokenId(id)) {
          throw inputError(
            source,
            undefined,
            `model.vocab: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}, ` +
              `not a token id (an integer from 0 to 2^31 - 1)`,
          );
        }
        byString.set(token, id);
      }
    } else {
      throw inputError(source, undefined, "not a tokenizer.json (model has no vocab)");
    }
    for (const token of added) {
      if (typeof token?.content !== "string" || !isTokenId(token.id)) {
        throw inputError(
          source,
          undefined,
          "added_tokens entries need content and an id (an integer from 0 to 2^31 - 1)",
        );
      }
      byString.set(token.content, token.id);
    }

    let size = 0;
    for (const id of byString.values()) size = Math.max(size, id + 1);
    // Every id below the highest gets a row (here, and in the model's embedding): a stray huge
    // id, which no tokenizer has, would allocate that many before anything else is read.
    if (size > 2 * byString.size + UNUSED_IDS_ALLOWED) {
      throw inputError(
        source,
        undefined,
        `its highest token id is ${size - 1}, for ${byString.size} tokens: ` +
          `the ids are not a vocabulary's`,
      );
    }
    const definedIds = size;
    const strings = new Array<string>(size).fill("");
    for (const [token, id] of byString) strings[id] = token;

    const special = {} as SpecialIds;
    for (const key of SPECIAL_KEYS) {
      const found = SPECIAL_ALIASES[key].find((name) => byString.has(name));
      if (found !== undefined) {
        special[key] = byString.get(found)!;
      } else {
        special[key] = strings.length;
        strings.push(SPECIAL_ALIASES[key][0]);
      }
    }
    // The ids the template itself gives each name (what the library inserts), else the vocab's.
    const templateIds = templateOf(json)?.special_tokens;
    const prefix = Int32Array.from(
      textPrefixOf(json).flatMap((name) => {
        const listed = templateIds?.[name]?.ids;
        const ids = Array.isArray(listed) && listed.length > 0 ? listed : [byString.get(name)];
        if (!ids.every((id) => isTokenId(id) && id < size)) {
          throw inputError(
            source,
            undefined,
            `post_processor: its template starts with ${JSON.stringify(name)}, a token the ` +
              `tokenizer does not have`,
          );
        }
        return ids as number[];
      }),
    );
    const isSpecial = new Uint8Array(strings.length);
    for (const token of added) if (token.special) isSpecial[token.id] = 1;
    for (const key of SPECIAL_KEYS) isSpecial[special[key]] = 1;

    // The encoder does not know the special added tokens, nor an added token taken for one of
    // the method's (a `<pad>` the file did not mark special), so text never turns into them.
    const chosen = new Set(SPECIAL_KEYS.map((key) => special[key]));
    const engineConfig = {
      ...config,
      added_tokens: added.filter((t) => !t.special && !chosen.has(t.id)),
    };
    let engine: Tokenizer;
    try {
      engine = new Tokenizer(engineConfig, {});
      matchRustLibrary(engine, json);
    } catch (error) {
      throw inputError(source, undefined, `cannot load tokenizer (${(error as Error).message})`);
    }
    return new TextTokenizer(
      engine,
      strings,
      isSpecial,
      special,
      source,
      leadingSpaceOf(json),
      definedIds,
      prefix,
    );
  }

  /**
   * The ids of `text`, with no special tokens added (a new array the caller may keep or
   * change). Repeated strings come from a cache.
   */
  encode(text: string): Int32Array {
    return this.encodeShared(text).slice();
  }

  /**
   * Like {@linkcode TextTokenizer.encode} but returns the cached array itself, for hot paths
   * that only read it. Never modify the result.
   */
  encodeShared(text: string): Int32Array {
    let ids = this.#cache.get(text);
    if (ids === undefined) {
      ids = text === ""
        ? new Int32Array(0)
        : Int32Array.from(this.#engine.encode(text, { add_special_tokens: false }).ids);
      if (this.#cache.size >= CACHE_LIMIT) {
        // Drop the oldest entry (Map keeps insertion order).
        this.#cache.delete(this.#cache.keys().next().value!);
      }
      this.#cache.set(text, ids);
    }
    return ids;
  }

  /**
   * The tokens of `text` where it follows other text (after an entity, a line break, or the
   * first piece of a record): for a byte-level tokenizer {@linkcode TextTokenizer.encodeShared}.
   * A metaspace tokenizer prepends `▁` (a space) to whatever it encodes, where the whole text gets
   * it only at its start: `", then"` after an entity would read `" , then"`. So such text is
   * encoded behind a line break (a byte token that merges with nothing), whose tokens are then
   * cut off; a leading space of `text` is its own `▁`. Never modify the result.
   *
   * @example
   * ```ts
   * declare const llama2: TextTokenizer;
   * llama2.decode(llama2.encodeFollowing(", then")); // ", then" (encodeShared: " , then")
   * ```
   */
  encodeFollowing(text: string): Int32Array {
    if (this.leadingSpace !== "metaspace" || text === "") return this.encodeShared(text);
    let ids = this.#followingCache.get(text);
    if (ids === undefined) {
      const anchor = this.encodeShared(FOLLOWING_ANCHOR);
      const both = this.encodeShared(FOLLOWING_ANCHOR + text);
      const behind = anchor.length > 0 && anchor.every((id, i) => both[i] === id);
      // Where the anchor's tokens do not lead (a vocabulary that merges them): the text alone.
      ids = behind ? both.slice(anchor.length) : this.encodeShared(text.replace(/^ /, ""));
      if (this.#followingCache.size >= CACHE_LIMIT) {
        this.#followingCache.delete(this.#followingCache.keys().next().value!);
      }
      this.#followingCache.set(text, ids);
    }
    return ids;
  }

  /**
   * The text of `ids`. Special tokens appear as their names (`[MASK]`) unless `skipSpecial`
   * leaves them out (the text around them then decodes as if they were not there);
   * nothing else is changed (no clean-up of spaces), so `decode(encode(s)) === s` for text the
   * tokenizer's normalizer leaves as it is (Qwen's NFC normalizer composes a decomposed accent;
   * a metaspace tokenizer reads a literal "▁" as a space).
   */
  decode(ids: ArrayLike<number>, options: { skipSpecial?: boolean } = {}): string {
    let out = "";
    let run: number[] = [];
    const flush = () => {
      if (run.length > 0) {
        out += out !== "" && this.leadingSpace === "metaspace"
          ? this.#decodeAfter(run)
          : this.#engine.decode(run, { clean_up_tokenization_spaces: false });
        run = [];
      }
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(id >= 0 && id < this.vocabSize)) throw new RangeError(`token id ${id} out of range`);
      if (this.#isSpecial[id]) {
        // Left out, they do not cut the text: what is around them decodes as one run, as the
        // tokenizers library decodes with skip_special_tokens (bytes they separate still join).
        if (options.skipSpecial) continue;
        flush();
        out += this.#strings[id];
      } else {
        run.push(id);
      }
    }
    flush();
    return out;
  }

  /**
   * The text of `run` where it follows other text. A metaspace decoder strips the one space its
   * normalizer prepends, at the start of the whole text only; decoded alone, a run after a special
   * token would lose its own leading space (`Hello[MASK]world`). So it is decoded behind a
   * one-letter token, whose text is then cut off.
   */
  #decodeAfter(run: number[]): string {
    const plain = { clean_up_tokenization_spaces: false };
    if (this.#anchor === undefined) {
      // Found and decoded once per tokenizer.
      const id = this.#strings.findIndex((s, i) => /^[A-Za-z]$/.test(s) && !this.isSpecial(i));
      this.#anchor = id < 0 ? null : { id, text: this.#engine.decode([id], plain) };
    }
    if (this.#anchor === null) return this.#engine.decode(run, plain);
    const { id, text } = this.#anchor;
    const both = this.#engine.decode([id, ...run], plain);
    return both.startsWith(text) ? both.slice(text.length) : this.#engine.decode(run, plain);
  }

  /**
   * The byte that `id` stands for where it is a byte token the decoder reads as a byte (Llama 2's
   * `<0xE2>`, under a ByteFallback decoder); undefined for every other token.
   *
   * @example
   * ```ts
   * declare const llama2: TextTokenizer;
   * llama2.byteOf(llama2.encode("\u{20E15}")[1]); // 0xF0, the character's first byte
   * ```
   */
  byteOf(id: number): number | undefined {
    this.#byteTokens ??= decodesByteTokens(this.#engine);
    if (!this.#byteTokens || this.isSpecial(id)) return undefined;
    return byteTokenValue(this.tokenString(id));
  }

  /** The vocabulary string of `id` (byte-level form such as `ĠNail`; `[MASK]` for specials). */
  tokenString(id: number): string {
    if (!(id >= 0 && id < this.vocabSize)) throw new RangeError(`token id ${id} out of range`);
    return this.#strings[id];
  }

  /** True for the special tokens (the six of the method and the tokenizer's own). */
  isSpecial(id: number): boolean {
    return this.#isSpecial[id] === 1;
  }
}
