/**
 * Which training a run does, from the options a user gave: every weight (full) or a LoRA adapter,
 * with the adapter's settings; and the per-task weights of the training records. Only the choice:
 * the targets are checked against the model's family by lib/train/family_setup.ts, and the
 * training is lib/train/trainer.ts.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import { isInitModel } from "../model/init.ts";
import type { LoraConfig } from "../model/lora.ts";

/** The adapter's options, as their library names (`loraRank` ...). */
export const LORA_OPTIONS = ["loraRank", "loraAlpha", "loraDropout", "loraTargets"] as const;

/** What the user asked for. */
export interface MethodChoice {
  /** Model directory. */
  model: string;
  /** Train every weight. */
  full?: boolean;
  /** Train a LoRA adapter. */
  lora?: boolean;
  /** Continue this adapter (its rank, alpha and targets). */
  adapter?: string;
  loraRank: number;
  loraAlpha: number;
  loraDropout: number;
  /** Absent or empty: the family's default targets. */
  loraTargets?: readonly string[];
  /** Whether the user gave the LoRA option explicitly (not a default). */
  given: (option: typeof LORA_OPTIONS[number]) => boolean;
}

/**
 * Full training (null) or the LoRA adapter to train: full or LoRA as asked (a LoRA option asks
 * for LoRA); otherwise every weight for a model that init wrote, of any family (LoRA on random
 * weights barely learns), and LoRA for a pretrained checkpoint.
 *
 * @example
 * ```ts
 * const lora = await chooseMethod({
 *   model: "models/Qwen2.5-0.5B",
 *   loraRank: 8,
 *   loraAlpha: 16,
 *   loraDropout: 0,
 *   given: () => false,
 * });
 * lora?.rank; // 8
 * ```
 */
export async function chooseMethod(choice: MethodChoice): Promise<LoraConfig | null> {
  const { given } = choice;
  if (choice.full && choice.lora) {
    throw new OptionError("full", (name, nameOf) => `give ${name} or ${nameOf("lora")}, not both`);
  }
  if (choice.full && choice.adapter !== undefined) {
    throw new OptionError(
      "adapter",
      (name, nameOf) => `${name} continues a LoRA adapter: drop ${nameOf("full")}`,
    );
  }
  const full = choice.full || (
    choice.adapter === undefined && !choice.lora && !LORA_OPTIONS.some(given) &&
    (await isInitModel(choice.model))
  );
  if (full) {
    const lora = LORA_OPTIONS.find(given);
    if (lora) {
      throw new OptionError(
        "full",
        (name, nameOf) => `${name} trains every weight: drop ${nameOf(lora)}`,
      );
    }
    return null;
  }
  if (choice.adapter !== undefined) {
    const fixed = LORA_OPTIONS.find((o) => o !== "loraDropout" && given(o));
    if (fixed) {
      throw new OptionError(
        "adapter",
        (name, nameOf) => `${name} sets the rank, alpha and targets: drop ${nameOf(fixed)}`,
      );
    }
  }
  return {
    rank: choice.loraRank,
    alpha: choice.loraAlpha,
    dropout: choice.loraDropout,
    targets: [...new Set(choice.loraTargets ?? [])],
  };
}

/**
 * Per-task weights from `TASK=WEIGHT` entries (`profile=4`, `sequential=0.5`); undefined for
 * none. A malformed entry is an OptionError of `taskWeights`.
 *
 * @example
 * ```ts
 * parseTaskWeights(["profile=4", "sequential=0.5"]); // { profile: 4, sequential: 0.5 }
 * ```
 */
export function parseTaskWeights(
  entries: readonly string[] | undefined,
): Record<string, number> | undefined {
  if (!entries) return undefined;
  const out: Record<string, number> = {};
  for (const entry of entries) {
    const match = /^([a-z_]+)=([0-9]*\.?[0-9]+)$/.exec(entry.trim());
    if (!match) {
      throw new OptionError(
        "taskWeights",
        (name) => `${name}: "${entry}" is not TASK=WEIGHT (e.g. profile=4)`,
      );
    }
    if (match[1] in out) {
      throw new OptionError(
        "taskWeights",
        (name) => `${name}: the task "${match[1]}" is given twice`,
      );
    }
    out[match[1]] = Number(match[2]);
  }
  return out;
}
