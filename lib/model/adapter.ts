/**
 * LoRA adapters in the Hugging Face PEFT layout, so Python users can load them with
 * `PeftModel.from_pretrained` and this toolkit can load theirs: a directory with
 * `adapter_model.safetensors` (tensors `base_model.model.{module}.lora_A.weight` [r, in] and
 * `base_model.model.{module}.lora_B.weight` [out, r]) and `adapter_config.json` (PEFT's keys:
 * `peft_type` "LORA", `r`, `lora_alpha`, `lora_dropout`, `target_modules`, `bias` "none", ...).
 * Loading checks everything against the model and says in one line what does not fit; merging
 * writes W + (lora_alpha / r) B A into the base weights.
 *
 * The safetensors header's `__metadata__` (string pairs PEFT ignores; it writes only `format`)
 * also records the SHA-256 of the tensor data and the identity of the base model
 * (lib/model/identity.ts): loading checks the first always and the second when given the base.
 * Adapters without them (PEFT's, this toolkit's before 0.1) still load, with a warning that the
 * base model cannot be checked.
 *
 * `adapter_config.json` holds PEFT's `LoraConfig` keys only (older PEFT raises on an unknown key,
 * newer warns). The toolkit's own settings (the attention rule, for every family's adapter; a
 * decoder's intra-position table's rows, the special-token rows and, when they hold a dataset's
 * item tokens, that list's digest) go in `recsysllm_adapter.json` beside it;
 * an adapter PEFT wrote has none, and loads as one trained causally with no intra-position table
 * (zeros) and the base model's own special rows, so it runs, gives gradients and trains further.
 *
 * @module
 */

import { join } from "node:path";
import { inputError } from "../errors.ts";
import { readJsonFile } from "../io/fs.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import {
  checkFinite,
  checkIdentity,
  identityFromMetadata,
  identityMetadata,
  type ModelIdentity,
} from "./identity.ts";
import { SafetensorsFile, writeSafetensors } from "./safetensors.ts";
import type { Weights } from "./weights.ts";
import { type AttentionMode, methodShapes } from "./families/decoder.ts";
import {
  type AnyConfig,
  type LoraConfig,
  loraModules,
  loraShapes,
  loraTargetTable,
  resolveLoraTargets,
} from "./lora.ts";
import { modelConfig, parsePrefixIds } from "./config.ts";
import {
  attentionOf,
  type DecoderConfig,
  decoderWeightShapes,
  weightNames,
} from "./families/config.ts";
import {
  checkItemTokens,
  type ItemTokenDigest,
  itemTokenDigestJson,
  parseItemTokenDigest,
} from "../collate/item_tokens.ts";
import type { Dataset } from "../data/dataset.ts";

/** How messages name a family. */
function familyLabel(c: DecoderConfig): string {
  return c.family === "thudm_glm" ? "GLM" : c.family;
}

/** The adapter files' names inside an adapter directory. */
export const ADAPTER_FILES = {
  weights: "adapter_model.safetensors",
  config: "adapter_config.json",
  /** The toolkit's settings of an adapter (PEFT does not read it). */
  settings: "recsysllm_adapter.json",
} as const;

/**
 * The method's settings and tensors that go with a decoder family's adapter (docs/method.md section
 * 11): the run's attention rule, and the intra-position table and special-token rows, kept in
 * `adapter_model.safetensors` as `base_model.model.{name}` beside the LoRA tensors and described
 * in `recsysllm_adapter.json` (older adapters: under `recsysllm` in `adapter_config.json`).
 */
export interface MethodSettings {
  /** The attention rule the adapter was trained with (`prefix` or `causal`). */
  attention: AttentionMode;
  /** R: rows of the intra-position table the adapter carries. */
  intraRows: number;
  /** Special-token rows past the base model's vocabulary that the adapter carries. */
  addedRows: number;
  /** The dataset item tokens among those rows (`item_tokens`), when the run had them. */
  itemTokens?: ItemTokenDigest;
  /** The longest sequence the run trained on (`max_length`): inference cuts prompts to it. */
  maxLength?: number;
  /**
   * The tokenizer's prefix every example started with (`prefix_ids`; docs/method.md section 4),
   * where it has one; adapters from before 2026-12-07 never saw it (inference warns).
   */
  prefixIds?: number[];
}

/** A LoRA adapter: its configuration and its tensors by PEFT name. */
export interface Adapter {
  /** Rank, alpha, dropout and targets (`adapter_config.json`). */
  lora: LoraConfig;
  /** LoRA tensors by PEFT name; for decoders also the method's tensors by their model names. */
  weights: Map<string, Float32Array>;
  /** `base_model_name_or_path` of the config, when known. */
  baseModel?: string;
  /** The method's settings and tensors beside the LoRA (decoder families only). */
  method?: MethodSettings;
  /** The identity of the base model it was trained on (recorded on save, read on load). */
  base?: ModelIdentity;
}

/** The name of a method tensor inside `adapter_model.safetensors`. */
const methodFileName = (name: string) => `base_model.model.${name}`;

/** Every tensor of an adapter: its name in the file, its name in the weights, its shape. */
function adapterTensors(config: AnyConfig, lora: LoraConfig, method?: MethodSettings) {
  const out: { file: string; name: string; shape: number[] }[] = [];
  for (const [name, shape] of loraShapes(config, lora)) out.push({ file: name, name, shape });
  if (method) {
    for (const [name, shape] of methodShapes(modelConfig(config), method.addedRows)) {
      out.push({ file: methodFileName(name), name, shape });
    }
  }
  return out;
}

/**
 * PEFT's `adapter_config.json` for `lora` (the keys PEFT 0.x writes, with their defaults; nothing
 * else, so every PEFT version loads it without a warning). `method` marks a decoder family's
 * adapter (`task_type` CAUSAL_LM); its settings go in {@linkcode adapterSettingsJson}'s file.
 */
export function adapterConfigJson(
  lora: LoraConfig,
  baseModel = "",
  method?: MethodSettings,
): Record<string, unknown> {
  const extra: Record<string, unknown> = method ? { task_type: "CAUSAL_LM" } : {};
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: lora.alpha,
    lora_dropout: lora.dropout,
    modules_to_save: null,
    peft_type: "LORA",
    r: lora.rank,
    rank_pattern: {},
    revision: null,
    target_modules: [...lora.targets],
    task_type: null,
    use_dora: false,
    use_rslora: false,
    ...extra,
  };
}

/** `recsysllm_adapter.json`: the toolkit's settings of an adapter. */
export function adapterSettingsJson(method: MethodSettings): Record<string, unknown> {
  return {
    format: "recsysllm-adapter-1",
    attention: method.attention,
    intra_position_rows: method.intraRows,
    added_rows: method.addedRows,
    ...(method.itemTokens ? { item_tokens: itemTokenDigestJson(method.itemTokens) } : {}),
    ...(method.maxLength ? { max_length: method.maxLength } : {}),
    ...(method.prefixIds?.length ? { prefix_ids: [...method.prefixIds] } : {}),
  };
}

/**
 * Writes `adapter` into directory `dir` (created if needed): its files atomically, the tensors in
 * module order.
 */
export async function saveAdapter(dir: string, adapter: Adapter, config: AnyConfig) {
  await Deno.mkdir(dir, { recursive: true });
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const { file, name, shape } of adapterTensors(config, adapter.lora, adapter.method)) {
    const data = adapter.weights.get(name);
    if (!data) throw new Error(`saveAdapter: tensor ${name} is missing`);
    tensors[file] = { shape, data };
  }
  await writeSafetensors(join(dir, ADAPTER_FILES.weights), tensors, {
    format: "pt",
    ...(adapter.base ? identityMetadata(adapter.base) : {}),
  });
  // PEFT's config marks a decoder's adapter by the method tensors it carries; the settings file
  // is written for every adapter that has settings (a GLM's attention rule too).
  const carries = adapter.method &&
    methodShapes(modelConfig(config), adapter.method.addedRows).size > 0;
  const json = adapterConfigJson(
    adapter.lora,
    adapter.baseModel,
    carries ? adapter.method : undefined,
  );
  await writeFileAtomic(join(dir, ADAPTER_FILES.config), JSON.stringify(json, null, 2) + "\n");
  if (adapter.method) {
    await writeFileAtomic(
      join(dir, ADAPTER_FILES.settings),
      JSON.stringify(adapterSettingsJson(adapter.method), null, 2) + "\n",
    );
  }
}

/** The canonical target name of a PEFT `target_modules` entry, or undefined when unknown. */
function canonicalTarget(entry: string, config: AnyConfig): string | undefined {
  for (const name of Object.keys(loraTargetTable(config).targets)) {
    if (entry === name || entry.endsWith(`.${name}`)) return name;
  }
  return undefined;
}

/** Whether the LoRA target `name` is a linear module of the model (gate_proj is not GLM-4's). */
function isModuleOf(config: AnyConfig, name: string): boolean {
  try {
    resolveLoraTargets(config, [name]);
    return true;
  } catch (error) {
    if (error instanceof RangeError) return false;
    throw error;
  }
}

/** Reads and checks `adapter_config.json`; problems are InputErrors naming the file. */
function parseAdapterConfig(
  json: unknown,
  file: string,
  config: AnyConfig,
  settings?: { json: unknown; file: string },
): { lora: LoraConfig; baseModel?: string; method?: MethodSettings } {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw inputError(file, undefined, "expected a JSON object");
  }
  const o = json as Record<string, unknown>;
  const bad = (problem: string) => inputError(file, undefined, problem);
  if (o.peft_type !== "LORA") {
    throw bad(`"peft_type" is ${JSON.stringify(o.peft_type)}; only "LORA" adapters are supported`);
  }
  if (!Number.isInteger(o.r) || (o.r as number) < 1) throw bad(`"r" must be a positive integer`);
  if (typeof o.lora_alpha !== "number" || !(o.lora_alpha > 0)) {
    throw bad(`"lora_alpha" must be a positive number`);
  }
  const dropout = o.lora_dropout ?? 0;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) {
    throw bad(`"lora_dropout" must be a number in [0, 1)`);
  }
  if ((o.bias ?? "none") !== "none") {
    throw bad(`"bias" is ${JSON.stringify(o.bias)}; only "none" is supported`);
  }
  if (o.use_dora === true) throw bad(`DoRA adapters ("use_dora": true) are not supported`);
  // These initialisations rewrite the base weights as well (PEFT recomputes the residual base at
  // load): the adapter is B A over that residual, not over the weights this toolkit loads.
  const init = o.init_lora_weights;
  if (typeof init === "string" && /^(pissa|olora|corda|loftq)/i.test(init)) {
    throw bad(
      `"init_lora_weights" is ${JSON.stringify(init)}: such an adapter applies to a base that ` +
        `its initialisation changed, which this toolkit does not rebuild (supported: true, ` +
        `false, "gaussian", "eva")`,
    );
  }
  if (o.use_rslora === true) {
    throw bad(`rank-stabilized LoRA ("use_rslora": true) is not supported`);
  }
  if (o.layers_to_transform !== undefined && o.layers_to_transform !== null) {
    throw bad(`"layers_to_transform" is not supported: adapters must cover every layer`);
  }
  for (const key of ["rank_pattern", "alpha_pattern"]) {
    const v = o[key];
    if (v && typeof v === "object" && Object.keys(v).length > 0) {
      throw bad(`"${key}" is not supported: one rank and alpha for every module`);
    }
  }
  const rawTargets = typeof o.target_modules === "string" ? [o.target_modules] : o.target_modules;
  if (!Array.isArray(rawTargets) || rawTargets.length === 0) {
    throw bad(`"target_modules" must list the adapted modules`);
  }
  // As PEFT matches them: names that match no module of the model adapt nothing and are
  // passed over (a list written for Llama names gate_proj, which GLM-4's fused gate_up_proj is
  // not); the adapter's tensors must then be those of the modules that do match.
  const targets: string[] = [];
  const model = modelConfig(config);
  for (const entry of rawTargets) {
    const name = typeof entry === "string" ? canonicalTarget(entry, model) : undefined;
    if (name && isModuleOf(model, name) && !targets.includes(name)) targets.push(name);
  }
  if (targets.length === 0) {
    throw bad(
      `no target module of ${JSON.stringify(rawTargets)} is a ${familyLabel(model)} linear ` +
        `module (${Object.keys(loraTargetTable(model).targets).join(", ")})`,
    );
  }
  const baseModel = typeof o.base_model_name_or_path === "string"
    ? o.base_model_name_or_path
    : undefined;
  let method: MethodSettings | undefined;
  // The settings file, else the key older versions wrote; neither: an adapter PEFT wrote.
  const own = settings ?? (o.recsysllm === undefined ? undefined : { json: o.recsysllm, file });
  if (own) {
    const where = own.file === file ? "recsysllm." : "";
    const wrong = (problem: string) => inputError(own.file, undefined, problem);
    if (typeof own.json !== "object" || own.json === null || Array.isArray(own.json)) {
      throw wrong("expected a JSON object");
    }
    const r = own.json as Record<string, unknown>;
    const attention = r.attention ?? "causal";
    if (attention !== "prefix" && attention !== "causal") {
      throw wrong(`"${where}attention" must be "prefix" or "causal"`);
    }
    const rows = r.intra_position_rows ?? model.intraRows;
    const added = r.added_rows ?? 0;
    if (!Number.isInteger(rows) || (rows as number) < 1) {
      throw wrong(`"${where}intra_position_rows" must be a positive integer`);
    }
    if (!Number.isInteger(added) || (added as number) < 0) {
      throw wrong(`"${where}added_rows" must be a non-negative integer`);
    }
    method = { attention, intraRows: rows as number, addedRows: added as number };
    const itemTokens = parseItemTokenDigest(r.item_tokens, own.file, `${where}item_tokens`);
    if (itemTokens) method.itemTokens = itemTokens;
    if (r.max_length !== undefined) {
      if (!Number.isInteger(r.max_length) || (r.max_length as number) < 1) {
        throw wrong(`"${where}max_length" must be a positive integer`);
      }
      method.maxLength = r.max_length as number;
    }
    const prefixIds = parsePrefixIds(r.prefix_ids, own.file, `${where}prefix_ids`);
    if (prefixIds) method.prefixIds = prefixIds;
  }
  return {
    lora: { rank: o.r as number, alpha: o.lora_alpha as number, dropout, targets },
    baseModel,
    method,
  };
}

/** Options of {@linkcode loadAdapter}. */
export interface LoadAdapterOptions {
  /** The base model the adapter is applied to: a recorded identity must match it. */
  base?: { identity: ModelIdentity; dir: string };
  /** Told when the adapter records no base identity, so it cannot be checked. */
  onWarning?: (message: string) => void;
  /**
   * The base model's weights and special rows (a decoder's `addedRows`): an adapter PEFT wrote
   * takes its missing method tensors from them (the special rows) or zeros (the intra table).
   */
  model?: { weights: Weights; addedRows: number };
  /**
   * The dataset the adapter is used with: item tokens it records (`item_tokens`) must be this
   * dataset's (lib/collate/item_tokens.ts), checked before the rows' count.
   */
  data?: Dataset;
}

/**
 * Loads the adapter in `dir` for a model of `config`. Errors (InputError, one line): a missing
 * directory or file, a config PEFT would not write or this toolkit cannot apply, a missing tensor,
 * a tensor of the wrong shape for the model, or a tensor for a module the config does not list,
 * tensor data that does not match its recorded checksum, a non-finite value, (with
 * `options.data`) item tokens recorded for another dataset, and (with `options.base`) a recorded
 * base model other than the one given.
 */
export async function loadAdapter(
  dir: string,
  config: AnyConfig,
  options: LoadAdapterOptions = {},
): Promise<Adapter> {
  try {
    if (!(await Deno.stat(dir)).isDirectory) {
      throw inputError(dir, undefined, "not an adapter directory");
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw inputError(dir, undefined, "adapter directory not found");
    }
    throw error;
  }
  const configPath = join(dir, ADAPTER_FILES.config);
  const json = await readJsonFile(
    configPath,
    "file not found (is this a LoRA adapter directory?)",
  );
  const settingsPath = join(dir, ADAPTER_FILES.settings);
  const settings = await Deno.stat(settingsPath).then(
    async () => ({ json: await readJsonFile(settingsPath, "file not found"), file: settingsPath }),
    () => undefined,
  );
  const parsed = parseAdapterConfig(json, configPath, config, settings);
  const { lora, baseModel } = parsed;
  // A decoder adapter PEFT wrote: LoRA tensors only; the method as a causal run without
  // intra-position table and with the base model's special rows.
  // An adapter without the method's settings where the model has method tensors (a rotary
  // family's intra table, special rows): one PEFT wrote.
  const model = modelConfig(config);
  const addedRows = options.model?.addedRows ?? 0;
  const peft = parsed.method === undefined && methodShapes(model, addedRows).size > 0;
  const method: MethodSettings | undefined = peft
    ? { attention: attentionOf(model), intraRows: model.intraRows, addedRows }
    : parsed.method;
  // Before the rows' count: rows of another dataset's items say so, whatever their number.
  if (options.data) {
    checkItemTokens(method?.itemTokens, options.data, {
      file: settings?.file ?? configPath,
      fix: "train an adapter on this dataset",
    });
  }
  // Before the base model's identity, which the special rows are part of: a mismatch here says
  // what differs (a dataset with another number of item tokens, or another tokenizer).
  if (method && options.model && method.addedRows !== options.model.addedRows) {
    throw inputError(
      settings?.file ?? configPath,
      undefined,
      `"added_rows" is ${method.addedRows}; the model with its tokenizer (and the dataset's item ` +
        `tokens, if any) needs ${options.model.addedRows}` +
        (method.addedRows < options.model.addedRows
          ? " (an adapter trained before 2026-12-07 on a checkpoint whose vocab_size pads past " +
            "its tokenizer used the padding rows: train it again)"
          : ""),
    );
  }
  const weightsPath = join(dir, ADAPTER_FILES.weights);
  const file = await SafetensorsFile.open(weightsPath);
  const base = identityFromMetadata(file.metadata);
  if (options.base && base) {
    checkIdentity(weightsPath, base, options.base.identity, options.base.dir);
  }
  const tensors = adapterTensors(config, lora, method);
  if (method && method.intraRows !== model.intraRows) {
    throw inputError(
      settings?.file ?? configPath,
      undefined,
      `"${settings ? "" : "recsysllm."}intra_position_rows" is ${method.intraRows}; ` +
        `the model has ${model.intraRows}`,
    );
  }
  const inFile = new Set(tensors.map((t) => t.file));
  // The base weights (lm_head too where tied: PEFT saves it all the same).
  const baseWeights = new Set([...decoderWeightShapes(model).keys(), weightNames(model).head]);
  for (const name of file.names()) {
    const whole = name.slice(methodFileName("").length);
    if (!inFile.has(name) && name.startsWith(methodFileName("")) && baseWeights.has(whole)) {
      // PEFT's modules_to_save (or the embeddings it saves after a vocabulary resize): a trained
      // copy of a base weight, said so rather than read as a tensor of another model's layers.
      throw inputError(
        weightsPath,
        undefined,
        `tensor "${name}" is a whole trained copy of the base model's "${whole}" (PEFT's ` +
          `"modules_to_save", or embeddings saved after resizing the vocabulary): not supported; ` +
          `this toolkit trains new tokens' rows in its own adapter tensors`,
      );
    }
    if (!inFile.has(name)) {
      throw inputError(
        weightsPath,
        undefined,
        `tensor "${name}" does not belong to this model's adapter (${config.numLayers} layers, ` +
          `targets ${lora.targets.join(", ")})`,
      );
    }
  }
  const stored = peft
    ? tensors.filter((t) => t.name.includes(".lora_") || file.has(t.file))
    : tensors;
  const read = await file.float32All(new Map(stored.map((t) => [t.file, t.shape])));
  const weights = new Map(stored.map((t) => [t.name, read.tensors.get(t.file)!]));
  for (const t of tensors) {
    if (weights.has(t.name)) continue;
    const size = t.shape.reduce((a, b) => a * b, 1);
    weights.set(t.name, options.model?.weights.get(t.name) ?? new Float32Array(size));
  }
  checkFinite(weightsPath, weights);
  if (options.base && !base) {
    // Loaded all the same: PEFT's adapters, and this toolkit's older ones, record no base model.
    options.onWarning?.(
      `${weightsPath} records no base model identity (made by PEFT or an older recsysllm): ` +
        `cannot check that it was trained on ${options.base.dir}`,
    );
  }
  return { lora, weights, baseModel, method, base };
}

/**
 * The base weights with the adapter's method tensors (a rotary family's intra table, the special
 * rows) in place: what a model needs beside the LoRA hook to run with the adapter unmerged. The
 * weights are shared, not copied.
 */
export function withMethodTensors(weights: Weights, config: AnyConfig, adapter: Adapter): Weights {
  const out: Weights = new Map(weights);
  if (adapter.method) {
    for (const name of methodShapes(modelConfig(config), adapter.method.addedRows).keys()) {
      out.set(name, adapter.weights.get(name)!);
    }
  }
  return out;
}

/**
 * The base weights with `adapter` merged in: W + (alpha / r) B A for every adapted module (new
 * arrays for those; the other weights are shared, not copied); a decoder adapter's method tensors
 * (intra table, special rows) are added as they are.
 */
export function mergeAdapter(weights: Weights, config: AnyConfig, adapter: Adapter): Weights {
  const merged = withMethodTensors(weights, config, adapter);
  const scaling = adapter.lora.alpha / adapter.lora.rank;
  const r = adapter.lora.rank;
  for (const m of loraModules(config, adapter.lora)) {
    const name = `${m.module}.weight`;
    const w = weights.get(name);
    if (!w) throw new Error(`mergeAdapter: weight ${name} is missing`);
    const a = adapter.weights.get(m.a)!; // [r, in]
    const b = adapter.weights.get(m.b)!; // [out, r]
    const out = Float32Array.from(w); // [out, in]
    const n = m.inFeatures;
    // Accumulated in float64 per element, then one rounding, so merging is exact to float32.
    const row = new Float64Array(n);
    for (let o = 0; o < m.outFeatures; o++) {
      row.fill(0);
      for (let k = 0; k < r; k++) {
        const s = scaling * b[o * r + k];
        if (s === 0) continue;
        const ak = k * n;
        for (let i = 0; i < n; i++) row[i] += s * a[ak + i];
      }
      const at = o * n;
      for (let i = 0; i < n; i++) out[at + i] = w[at + i] + row[i];
    }
    merged.set(name, out);
  }
  return merged;
}
