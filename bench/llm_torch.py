"""PyTorch reference for `deno task bench llm` (bench/llm.ts runs it in the same run).

The same Qwen2-shaped checkpoint (read from its BF16 safetensors, no other package needed), the
same batch (2 x 256, sep 160, loss at the 96 part B positions), float32, the same thread count:
forward tokens/s (logits at the loss positions only, as the toolkit's loss graph) and LoRA step
tokens/s (rank 8 on q, k, v, plus a 64-row intra-position table and 5 special-token rows,
AdamW), with peak RSS. Prints one JSON line.

Usage: python3 bench/llm_torch.py CHECKPOINT_DIR THREADS B L SEP
"""

import json
import math
import os
import resource
import struct
import sys
import time

import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        dtype = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}[e["dtype"]]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=dtype).reshape(e["shape"])
        out[name] = t.float()
    return out


def main():
    ckpt, threads, B, L, SEP = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:6])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = json.load(open(f"{ckpt}/config.json"))
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, V, nl, eps = H // nh, cfg["vocab_size"], cfg["num_hidden_layers"], cfg["rms_norm_eps"]
    t0 = time.perf_counter()
    W = read_safetensors(f"{ckpt}/model.safetensors")
    load_s = time.perf_counter() - t0

    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, V, (B, L), generator=g)
    labels = torch.randint(0, V, (B, L), generator=g)
    pos = torch.arange(L).expand(B, L)
    rope = torch.where(pos < SEP, pos, (SEP - 1) + (pos - SEP + 1))
    intra = torch.where(pos < SEP, torch.zeros_like(pos), pos - SEP + 1).clamp(max=63)
    loss_at = (pos >= SEP)
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
    ang = rope[..., None].float() * inv
    cos = torch.cat([ang.cos(), ang.cos()], -1)[:, None]
    sin = torch.cat([ang.sin(), ang.sin()], -1)[:, None]
    i = torch.arange(L)
    mask = torch.where(i[None, :] <= i[:, None], 0.0, float("-inf"))

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def rot(x):
        x1, x2 = x.chunk(2, -1)
        return torch.cat([-x2, x1], -1)

    def forward(lora=None, extra=None):
        E = W["model.embed_tokens.weight"]
        if extra is None:
            x = E[ids]
        else:
            new = ids >= V
            x = torch.where(new[..., None], extra["added"][(ids - V).clamp(min=0)], E[ids.clamp(max=V - 1)])
            x = x + extra["intra"][intra]
        for l in range(nl):
            p = f"model.layers.{l}."
            h = rms(x, W[p + "input_layernorm.weight"])

            def proj(name, n):
                y = h @ W[p + f"self_attn.{name}.weight"].T + W[p + f"self_attn.{name}.bias"]
                if lora is not None:
                    a, b = lora[(l, name)]
                    y = y + 2.0 * ((h @ a.T) @ b.T)
                return y.view(B, L, n, hd).transpose(1, 2)

            q, k, v = proj("q_proj", nh), proj("k_proj", nkv), proj("v_proj", nkv)
            q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
            k, v = k.repeat_interleave(nh // nkv, 1), v.repeat_interleave(nh // nkv, 1)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, -1)
            ctx = (att @ v).transpose(1, 2).reshape(B, L, H)
            x = x + ctx @ W[p + "self_attn.o_proj.weight"].T
            h = rms(x, W[p + "post_attention_layernorm.weight"])
            gate = h @ W[p + "mlp.gate_proj.weight"].T
            up = h @ W[p + "mlp.up_proj.weight"].T
            x = x + (torch.nn.functional.silu(gate) * up) @ W[p + "mlp.down_proj.weight"].T
        rows = rms(x[loss_at], W["model.norm.weight"])
        logits = rows @ E.T
        if extra is not None:
            logits = torch.cat([logits, rows @ extra["added"].T], -1)
        return torch.nn.functional.cross_entropy(logits, labels[loss_at])

    with torch.no_grad():
        forward()
        times = []
        for _ in range(3):
            t = time.perf_counter()
            forward()
            times.append(time.perf_counter() - t)
    fwd = B * L / min(times)

    lora = {}
    for l in range(nl):
        for name, out in (("q_proj", nh * hd), ("k_proj", nkv * hd), ("v_proj", nkv * hd)):
            a = (torch.rand(8, H) * 2 - 1) / math.sqrt(H)
            lora[(l, name)] = (a.requires_grad_(), torch.zeros(out, 8, requires_grad=True))
    extra = {
        "intra": torch.zeros(64, H, requires_grad=True),
        "added": W["model.embed_tokens.weight"].mean(0, keepdim=True).repeat(5, 1).requires_grad_(),
    }
    params = [t for ab in lora.values() for t in ab] + list(extra.values())
    opt = torch.optim.AdamW(params, lr=1e-4)
    steps = []
    for _ in range(3):
        t = time.perf_counter()
        opt.zero_grad()
        forward(lora, extra).backward()
        opt.step()
        steps.append(time.perf_counter() - t)
    # Debian's torch calls the system libblas.so.3: name the library actually mapped.
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f if "blas" in line.lower() and "/" in line})
    blas = ", ".join(libs) or "unknown"
    print(json.dumps({
        "torch": torch.__version__,
        "blas": blas,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "auto"),
        "threads": torch.get_num_threads(),
        "load_s": round(load_s, 2),
        "forward_tokens_per_s": round(fwd, 1),
        "forward_tokens_per_s_all": [round(B * L / t, 1) for t in times],
        "lora_step_tokens_per_s": round(B * L / min(steps[1:]), 1),
        "lora_step_tokens_per_s_all": [round(B * L / t, 1) for t in steps[1:]],
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2),
    }))


main()
