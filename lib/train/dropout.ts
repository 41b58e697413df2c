/**
 * Keep-masks of the model's own dropout (`TrainSetup.dropout`): values 0 with probability p, else
 * 1/(1-p) (inverted dropout, as torch.nn.Dropout). A training step draws millions of them (the
 * embeddings and two outputs a layer, each [rows, hidden]), so each value takes 16 random bits
 * (two from one 32-bit draw) rather than a 53-bit float: p is then exact to 1/65536 (0.3 draws
 * zeros with probability 19661/65536 = 0.300003), and a mask costs about a quarter of the time.
 * The adapter's masks keep their own draw (`dropoutMask` in lib/model/lora.ts), so a seed gives
 * the adapters it gave before.
 *
 * @module
 */

import type { Rng } from "../random.ts";

/**
 * Draws `n` keep-mask values for dropout probability `p` from `rng`.
 *
 * @example
 * ```ts
 * import { Rng } from "../random.ts";
 *
 * const mask = keepMask(1000, 0.25, new Rng(1));
 * mask.filter((x) => x === 0).length; // about 250; the others are 1 / 0.75
 * ```
 */
export function keepMask(n: number, p: number, rng: Rng): Float32Array {
  const mask = new Float32Array(n);
  const keep = 1 / (1 - p);
  const cut = Math.round(p * 65536); // a value is dropped when its 16 bits are below this
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const u = rng.u32();
    mask[i] = (u & 0xffff) < cut ? 0 : keep;
    mask[i + 1] = (u >>> 16) < cut ? 0 : keep;
  }
  if (i < n) mask[i] = (rng.u32() & 0xffff) < cut ? 0 : keep;
  return mask;
}
