/**
 * Whether the decoder families compute what Hugging Face transformers computes on the same
 * checkpoint: the toolkit's `forward` and transformers' `AutoModelForCausalLM`, float32, on one
 * batch of random ids at positions 0..39 (causal attention, no adapter), in one run.
 *
 * Eleven checkpoints in a family's `init --family` layout (tiny: hidden 64, 2 layers, 4 heads, 2
 * key/value heads) with weights drawn again at sizes that make attention sharp, so that rotary
 * positions, norms and biases move the logits (`without_it_move`: how far transformers' logits
 * move when the same ids sit at positions 0, 2, 4, ...): llama, llama with attention and MLP
 * biases, llama with llama3 and with linear rope scaling, mistral, qwen2, qwen3 (tied and untied
 * embeddings), GLM-4 (partial rotary 0.5, and 1), GLM-4-0414 (`glm4_0414`: model_type glm4, its
 * norms after attention and after the MLP). Two of them again as transformers saves them
 * (`_resaved`: transformers 5's own config layout). And three LoRA adapters PEFT wrote (llama,
 * qwen3, GLM-4: rank 4, alpha 12, every projection), applied by `forward --adapter` and by PEFT
 * (`without_it_move`: how far the adapter moves the logits). bench/transformers_parity.py draws
 * them and runs transformers and PEFT.
 *
 *     deno task bench transformers_parity
 *
 * Prints per checkpoint the largest absolute difference of the logits, the largest logit, their
 * ratio (`relative`) and the share of positions whose argmax agrees; `worst_relative` is the
 * largest ratio. Needs `python3` with torch, transformers, peft and safetensors;
 * TRANSFORMERS_PARITY_PYTHON names another interpreter.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { lastJsonLine, pythonWith, TRANSFORMERS_STACK } from "./python.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const SCRIPT = fileURLToPath(new URL("./transformers_parity.py", import.meta.url));
const FAMILIES = ["llama", "qwen2", "qwen3", "glm"] as const;

const lastJson = (command: string, args: string[]) =>
  lastJsonLine("transformers_parity", command, args);

export async function run(): Promise<Record<string, unknown>> {
  const { REAL_TOKENIZERS } = await import("../tests/helpers/real_tokenizers.ts");
  const python = await pythonWith(
    "transformers_parity",
    "TRANSFORMERS_PARITY_PYTHON",
    TRANSFORMERS_STACK,
  );
  const deno = Deno.execPath();
  const dir = await Deno.makeTempDir({ prefix: "recsysllm-transformers-parity-" });
  try {
    console.error("bench transformers_parity: checkpoints");
    for (const family of FAMILIES) {
      await lastJson(deno, [
        ...["run", "-A", MAIN, "init", "--quiet", "--family", family, "--preset", "tiny"],
        ...["--tokenizer", REAL_TOKENIZERS.qwen3, "--out", join(dir, family), "--seed", "3"],
      ]);
    }
    const { variants, adapters } = await lastJson(python, [SCRIPT, "prepare", dir]) as {
      variants: string[];
      adapters: string[];
    };
    console.error("bench transformers_parity: the toolkit's forward");
    for (const name of variants) {
      const model = join(dir, "variants", name);
      await lastJson(deno, [
        ...["run", "-A", MAIN, "forward", "--quiet", "--device", "cpu", "--model", model],
        ...["--batch", join(dir, "batch.json"), "--out", `${model}.out.safetensors`],
      ]);
    }
    for (const name of adapters) {
      const adapter = join(dir, "adapters", name);
      await lastJson(deno, [
        ...["run", "-A", MAIN, "forward", "--quiet", "--device", "cpu"],
        ...["--model", join(dir, "variants", name), "--adapter", adapter],
        ...["--batch", join(dir, "batch.json"), "--out", `${adapter}.out.safetensors`],
      ]);
    }
    console.error("bench transformers_parity: transformers and PEFT");
    const result = await lastJson(python, [SCRIPT, "compare", dir]);
    const all = [result.variants, result.adapters] as Record<string, { relative: number }>[];
    return {
      ...result,
      worst_relative: Math.max(...all.flatMap((c) => Object.values(c).map((v) => v.relative))),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
