/**
 * Building a record's segments: text and entities alternating, adjacent text merged, at most one
 * answer marker, never two entities (or an entity and the answer) side by side, so a tokenizer
 * never has to guess where one entity ends and the next begins.
 *
 * @module
 */

import type { EntitySegment, Segment } from "./types.ts";

/** An entity to mention: its pool string and kind. */
export type EntityRef = EntitySegment;

/**
 * Accumulates segments.
 *
 * @example
 * ```ts
 * new SegmentBuilder().text("User 7 bought ").entity("Rose Shampoo", "item")
 *   .text(". Next: ").answer().build();
 * // [{text: "User 7 bought "}, {entity: "Rose Shampoo", kind: "item"}, {text: ". Next: "}, {answer: true}]
 * ```
 */
export class SegmentBuilder {
  readonly #out: Segment[] = [];
  #answered = false;

  /** Appends text (merged into a preceding text segment; empty text is ignored). */
  text(text: string): this {
    if (text === "") return this;
    const last = this.#out[this.#out.length - 1];
    if (last !== undefined && "text" in last) last.text += text;
    else this.#out.push({ text });
    return this;
  }

  #checkGap(what: string): void {
    const last = this.#out[this.#out.length - 1];
    if (last !== undefined && !("text" in last)) {
      throw new Error(`template bug: ${what} directly after an entity or the answer`);
    }
  }

  /** Appends one entity; `age` marks a history item (see {@linkcode EntitySegment.age}). */
  entity(entity: string, kind: string, age?: number): this {
    this.#checkGap(`entity "${entity}"`);
    this.#out.push(age === undefined ? { entity, kind } : { entity, kind, age });
    return this;
  }

  /** Appends the answer marker (once per record). */
  answer(): this {
    if (this.#answered) throw new Error("template bug: two answer markers");
    this.#checkGap("the answer marker");
    this.#answered = true;
    this.#out.push({ answer: true });
    return this;
  }

  /** Appends entities joined by `separator`, the last two by `last` (`A, B and C`). */
  list(refs: readonly EntityRef[], separator = ", ", last = " and "): this {
    refs.forEach((ref, i) => {
      if (i > 0) this.text(i === refs.length - 1 ? last : separator);
      this.entity(ref.entity, ref.kind, ref.age);
    });
    return this;
  }

  /** The segments built so far. */
  build(): Segment[] {
    return this.#out;
  }
}
