"""The transformers side of `deno task bench transformers_parity`.

  python3 bench/transformers_parity.py prepare DIR   # DIR holds llama/, qwen2/, qwen3/, glm/ (init)
  python3 bench/transformers_parity.py compare DIR

`prepare` writes one model directory per variant into DIR/variants/ (a family's `init` checkpoint
with a config change, its weights drawn again in float32 at sizes that make attention sharp, so
that rotary positions, norms and biases move the logits: q and k projections with std 0.35,
other matrices 0.15, embeddings 1, norm weights 1 + 0.3 N(0, 1), biases 0.3 N(0, 1)), and
DIR/batch.json (2 x 40 random ids, positions 0..39). Two of them are also saved again by transformers
itself (`save_pretrained`: transformers 5 writes `rope_parameters` and `dtype`), as NAME_resaved.
`prepare` also writes LoRA
adapters with PEFT (rank 4, alpha 12, every projection, A and B drawn with std 0.3) for three of
them into DIR/adapters/NAME. `compare` loads each variant with transformers' AutoModelForCausalLM
(float32, every tensor from the file: a missing or unexpected one fails), and each adapter over
its variant with PEFT, runs the batch and compares the logits with NAME.out.safetensors beside
them (the toolkit's `forward`, with `--adapter` for the adapters). Both print one JSON line.
"""

import json
import os
import random
import re
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

B, L = 2, 40


def drawn(name, shape, g):
    if name.endswith("norm.weight") or "layernorm" in name:
        return 1 + 0.3 * torch.randn(shape, generator=g)
    if name.endswith(".bias"):
        return 0.3 * torch.randn(shape, generator=g)
    if "q_proj" in name or "k_proj" in name:
        return 0.35 * torch.randn(shape, generator=g)
    if "embed" in name or "lm_head" in name:
        return torch.randn(shape, generator=g)
    return 0.15 * torch.randn(shape, generator=g)


def variant(src, dst, changes, g):
    os.makedirs(dst)
    config = json.load(open(os.path.join(src, "config.json")))
    config.update(changes)
    config["torch_dtype"] = "float32"
    json.dump(config, open(os.path.join(dst, "config.json"), "w"), indent=1)
    shutil.copy(os.path.join(src, "tokenizer.json"), os.path.join(dst, "tokenizer.json"))
    shapes = {k: v.shape for k, v in load_file(os.path.join(src, "model.safetensors")).items()}
    if config.get("attention_bias") and config["model_type"] in ("llama", "mistral"):
        for k in list(shapes):
            if re.search(r"self_attn\.[qkvo]_proj\.weight$", k):
                shapes[k[:-6] + "bias"] = shapes[k][:1]
    if config.get("mlp_bias"):
        for k in list(shapes):
            if re.search(r"mlp\.(gate|up|down)_proj\.weight$", k):
                shapes[k[:-6] + "bias"] = shapes[k][:1]
    if config["model_type"] == "glm4":  # GLM-4-0414's norms after attention and after the MLP
        for k in list(shapes):
            if k.endswith("post_attention_layernorm.weight"):
                for norm in ("post_self_attn_layernorm", "post_mlp_layernorm"):
                    shapes[k.replace("post_attention_layernorm", norm)] = shapes[k]
    if config.get("tie_word_embeddings") is False and "lm_head.weight" not in shapes:
        shapes["lm_head.weight"] = shapes["model.embed_tokens.weight"]
    tensors = {k: drawn(k, shape, g).contiguous() for k, shape in sorted(shapes.items())}
    save_file(tensors, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})


VARIANTS = {
    "llama": ("llama", {}),
    "llama_biases": ("llama", {"attention_bias": True, "mlp_bias": True}),
    "llama3_rope": ("llama", {"rope_theta": 500000.0, "rope_scaling": {
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32}}),
    "llama_linear_rope": ("llama", {"rope_scaling": {"rope_type": "linear", "factor": 2.0}}),
    "mistral": ("llama", {"model_type": "mistral", "architectures": ["MistralForCausalLM"],
                          "sliding_window": 4096}),
    "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {}),
    "qwen3_untied": ("qwen3", {"tie_word_embeddings": False}),
    "glm4": ("glm", {}),
    "glm4_full_rotary": ("glm", {"partial_rotary_factor": 1.0}),
    "glm4_0414": ("glm", {"model_type": "glm4", "architectures": ["Glm4ForCausalLM"]}),
}


# Variants also saved again by transformers (its own config layout), as NAME_resaved.
RESAVED = ["llama3_rope", "glm4"]

# Adapters PEFT writes over three variants: every projection, GLM-4's fused gate_up_proj too.
ADAPTERS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "glm4": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"],
}


def load(path):
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, output_loading_info=True)
    if info["missing_keys"] or info["unexpected_keys"]:
        raise SystemExit(f"{path}: transformers did not read every tensor: {info}")
    return model.eval()


def prepare(root):
    from peft import LoraConfig, get_peft_model

    g = torch.Generator().manual_seed(7)
    for name, (family, changes) in VARIANTS.items():
        variant(os.path.join(root, family), os.path.join(root, "variants", name), changes, g)
    # Checkpoints as transformers 5 saves them (rope_parameters, dtype): read back by the toolkit.
    for name in RESAVED:
        saved = os.path.join(root, "variants", name + "_resaved")
        load(os.path.join(root, "variants", name)).save_pretrained(saved)
        shutil.copy(os.path.join(root, "variants", name, "tokenizer.json"), saved)
    for name, targets in ADAPTERS.items():
        config = LoraConfig(r=4, lora_alpha=12, target_modules=targets, lora_dropout=0.0,
                            init_lora_weights=False)
        model = get_peft_model(load(os.path.join(root, "variants", name)), config)
        for parameter_name, parameter in model.named_parameters():
            if "lora_" in parameter_name:
                parameter.data = 0.3 * torch.randn(parameter.shape, generator=g)
        model.save_pretrained(os.path.join(root, "adapters", name))
    rng = random.Random(5)
    vocab = json.load(open(os.path.join(root, "llama", "config.json")))["vocab_size"]
    ids = [[rng.randrange(vocab) for _ in range(L)] for _ in range(B)]
    batch = {
        "input_ids": ids,
        "position_ids": [[list(range(L)), [0] * L] for _ in range(B)],
        "sep": [L] * B,
        "rope_position_ids": [list(range(L)) for _ in range(B)],
    }
    json.dump(batch, open(os.path.join(root, "batch.json"), "w"))
    names = list(VARIANTS) + [name + "_resaved" for name in RESAVED]
    print(json.dumps({"variants": names, "adapters": list(ADAPTERS)}))


def compared(ours_path, ref, moved, base=None):
    ours = load_file(ours_path)["logits"][..., : ref.shape[-1]]
    diff = float((ours - ref).abs().max())
    scale = float(ref.abs().max())
    out = {
        "max_abs_diff": float(f"{diff:.3g}"),
        "max_abs_logit": round(scale, 3),
        "relative": float(f"{diff / scale:.3g}"),
        "argmax_agree": float((ours.argmax(-1) == ref.argmax(-1)).float().mean()),
        # How much the compared part matters here: the logits' move without it.
        "without_it_move": round(float((moved - ref).abs().max()), 3),
    }
    return out


def compare(root):
    import transformers
    from peft import PeftModel

    ids = torch.tensor(json.load(open(os.path.join(root, "batch.json")))["input_ids"])
    variants, adapters = {}, {}
    for name in list(VARIANTS) + [name + "_resaved" for name in RESAVED]:
        path = os.path.join(root, "variants", name)
        model = load(path)
        with torch.no_grad():
            ref = model(input_ids=ids).logits
            # Positions: the same ids at positions 0, 2, 4, ...
            moved = model(input_ids=ids, position_ids=2 * torch.arange(L).repeat(B, 1)).logits
        variants[name] = {"class": type(model).__name__,
                          **compared(path + ".out.safetensors", ref, moved)}
        if name in ADAPTERS:
            adapter = os.path.join(root, "adapters", name)
            with torch.no_grad():
                adapted = PeftModel.from_pretrained(model, adapter).eval()(input_ids=ids).logits
            # The adapter: the base model's logits.
            adapters[name] = compared(adapter + ".out.safetensors", adapted, ref)
    print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__,
                      "peft": __import__("peft").__version__, "variants": variants,
                      "adapters": adapters}))


if __name__ == "__main__":
    {"prepare": prepare, "compare": compare}[sys.argv[1]](sys.argv[2])
