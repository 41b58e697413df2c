"""An independent PyTorch SASRec for `deno task bench sasrec`: the toolkit's model and protocol
(lib/sasrec, lib/baselines/sasrec.ts) written again, to check that its SASRec is as strong as a
standard implementation of the same choices.

Full cross-entropy over all items at every position, pre-LN blocks (hidden 64, 2 blocks, 1 head,
max length 50, dropout 0.5 on the embeddings, the attention output and the feed-forward), the item
table as the output layer, Xavier-normal initialisation, Adam (lr 2e-3, betas 0.9/0.98), batches
of 128 users sorted by length within chunks of 64 batches, each batch's loss weighted by its
positions so that every position of an epoch weighs alike; leave-one-out on Amazon Beauty (P5's
sequential_data.txt); early stopping on validation NDCG@10 (patience 10, at most 200 epochs), then
a refit from scratch for the best epoch count on the histories followed by their validation item,
and the test split ranked with it: all items, the user's whole history excluded, ties counted
against the target.

  python3 bench/sasrec_torch.py     # about 30 minutes on 2 cores; THREADS, SEED, EPOCHS,
                                    # BUCKET_BATCHES (1: users batched at random, not by length),
                                    # LOSS_WEIGHTS (positions, the default, or batch)

Prints progress and, last, one JSON line (also written to result_seedN.json in SASREC_TORCH_OUT,
default a new temporary directory, beside the curves). Measured 2026-12-07 with
LOSS_WEIGHTS=batch, as the toolkit was before ff8b4aa (seed 1, a shared machine): test HR@10
0.0990 / NDCG@10 0.0607 (the toolkit's bench, same machine: 0.1004 / 0.0597); best epoch 27 (the
toolkit's 35, on the same plateau); without the refit 0.0840 / 0.0492. The default's first epoch
(EPOCHS=1): validation NDCG@10 0.0126, the toolkit's 0.0126.
"""
import json
import math
import os
import tempfile
import time

import numpy as np
import torch  # noqa
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(int(os.environ.get("THREADS", 2)))
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data", "amazon-beauty", "sequential_data.txt")
OUT = os.environ.get("SASREC_TORCH_OUT") or tempfile.mkdtemp(prefix="sasrec-torch-")
os.makedirs(OUT, exist_ok=True)
SEED = int(os.environ.get("SEED", 1))
MAX_EPOCHS = int(os.environ.get("EPOCHS", 200))
PATIENCE = 10
D, BLOCKS, HEADS, MAXLEN = 64, 2, 1, 50
DROPOUT, LR, BETA2, BATCH = 0.5, 2e-3, 0.98, 128
BUCKET_BATCHES = int(os.environ.get("BUCKET_BATCHES", 64))  # 1: random batches
# "positions": each batch's mean loss scaled by its rows over the epoch's mean rows per batch,
# so every position weighs alike (the toolkit since ff8b4aa); "batch": the plain batch mean.
LOSS_WEIGHTS = os.environ.get("LOSS_WEIGHTS", "positions")
assert LOSS_WEIGHTS in ("positions", "batch"), f"LOSS_WEIGHTS: {LOSS_WEIGHTS}"
EPS = 1e-8
MASKED = -10000.0


def log(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------- data
users, seqs = [], []
raw_ids = {}
for line in open(DATA):
    parts = line.split()
    users.append(parts[0])
    s = []
    for x in parts[1:]:
        if x not in raw_ids:
            raw_ids[x] = len(raw_ids) + 1  # 1..V, 0 = padding
        s.append(raw_ids[x])
    seqs.append(s)
V = len(raw_ids)
log(f"{len(users)} users, {V} items")
train_seqs = [s[:-2] for s in seqs]
valid_tgt = [s[-2] for s in seqs]
test_tgt = [s[-1] for s in seqs]
refit_seqs = [s[:-1] for s in seqs]


# ---------------------------------------------------------------- model
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention_norm = nn.LayerNorm(D, eps=EPS)
        self.qkv = nn.Linear(D, 3 * D)
        self.out = nn.Linear(D, D)
        self.ffn_norm = nn.LayerNorm(D, eps=EPS)
        self.up = nn.Linear(D, D)
        self.down = nn.Linear(D, D)

    def forward(self, x, bias, drop):
        B, L, _ = x.shape
        hd = D // HEADS
        h = self.attention_norm(x)
        q, k, v = self.qkv(h).view(B, L, 3 * HEADS, hd).transpose(1, 2).split(HEADS, dim=1)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd)) + bias
        ctx = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, L, D)
        x = x + drop(self.out(ctx))
        h = self.ffn_norm(x)
        return x + drop(self.down(drop(F.relu(self.up(h)))))


class SASRec(nn.Module):
    def __init__(self):
        super().__init__()
        self.item = nn.Parameter(torch.empty(V + 1, D))
        self.pos = nn.Parameter(torch.empty(MAXLEN, D))
        self.blocks = nn.ModuleList(Block() for _ in range(BLOCKS))
        self.final_norm = nn.LayerNorm(D, eps=EPS)
        # Xavier-normal on every matrix (std sqrt(2/(fan0+fan1)) of the stored shape), biases 0,
        # LN 1/0, padding row 0 -- as initSasrec.
        for name, p in self.named_parameters():
            if p.dim() == 2:
                with torch.no_grad():
                    p.normal_(0.0, math.sqrt(2.0 / (p.shape[0] + p.shape[1])))
            elif name.endswith("norm.weight"):
                nn.init.ones_(p)
            else:
                nn.init.zeros_(p)
        with torch.no_grad():
            self.item[0].zero_()

    def encode(self, items, positions):
        B, L = items.shape
        drop = lambda t: F.dropout(t, DROPOUT, self.training)
        x = self.item[items] * math.sqrt(D) + self.pos[positions]
        x = drop(x)
        ar = torch.arange(L)
        causal = ar[None, :] <= ar[:, None]  # [L(q), L(k)]
        real = items != 0
        seen = causal[None] & real[:, None, :]
        bias = torch.where(seen, 0.0, MASKED)[:, None]  # [B,1,L,L]
        for blk in self.blocks:
            x = blk(x, bias, drop)
        return x


def train_batch(windows):
    L = max(len(w) - 1 for w in windows)
    B = len(windows)
    items = np.zeros((B, L), np.int64)
    pos = np.zeros((B, L), np.int64)
    tg = np.zeros((B, L), np.int64)  # 0 = no loss
    for i, w in enumerate(windows):
        n = len(w) - 1
        items[i, L - n:] = w[:-1]
        pos[i, L - n:] = np.arange(MAXLEN - n, MAXLEN)
        tg[i, L - n:] = w[1:]
    return torch.from_numpy(items), torch.from_numpy(pos), torch.from_numpy(tg)


def epoch_batches(lens, rng):
    """Batches of users sorted by length within chunks of BUCKET_BATCHES batches, shuffled."""
    order = rng.permutation(len(lens))
    span = BATCH * BUCKET_BATCHES
    out = []
    for s in range(0, len(lens), span):
        chunk = sorted(order[s:s + span].tolist(), key=lambda i: lens[i])  # stable
        out += [chunk[j:j + BATCH] for j in range(0, len(chunk), BATCH)]
    return [out[i] for i in rng.permutation(len(out))]


@torch.no_grad()
def evaluate(model, histories, targets, ks=(5, 10)):
    """Pessimistic-tie ranks over all items, history excluded; returns metrics dict."""
    model.eval()
    order = sorted(range(len(histories)), key=lambda i: min(len(histories[i]), MAXLEN))
    hits = {k: 0.0 for k in ks}
    ndcg = {k: 0.0 for k in ks}
    E = model.item
    for s in range(0, len(order), 256):
        ids = order[s:s + 256]
        L = max(min(len(histories[i]), MAXLEN) for i in ids)
        items = np.zeros((len(ids), L), np.int64)
        pos = np.zeros((len(ids), L), np.int64)
        for r, i in enumerate(ids):
            h = histories[i][-MAXLEN:]
            items[r, L - len(h):] = h
            pos[r, L - len(h):] = np.arange(MAXLEN - len(h), MAXLEN)
        x = model.encode(torch.from_numpy(items), torch.from_numpy(pos))[:, -1]
        scores = model.final_norm(x) @ E.T  # [B, V+1]
        scores[:, 0] = -math.inf
        for r, i in enumerate(ids):
            scores[r, histories[i]] = -math.inf
        t = torch.tensor([targets[i] for i in ids])
        st = scores.gather(1, t[:, None])
        rank = (scores >= st).sum(1) - 1  # 0-based, pessimistic ties
        for k in ks:
            hit = rank < k
            hits[k] += hit.sum().item()
            ndcg[k] += (hit.float() / torch.log2(rank.float() + 2)).sum().item()
    n = len(histories)
    model.train()
    out = {}
    for k in ks:
        out[f"HR@{k}"] = hits[k] / n
        out[f"NDCG@{k}"] = ndcg[k] / n
    return out


def train(sequences, epochs, validation=None, tag="es"):
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    windows = [np.array(s[-(MAXLEN + 1):]) for s in sequences if len(s) >= 2]
    lens = [len(w) for w in windows]
    model = SASRec()
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, BETA2), eps=1e-8)
    best, best_epoch, stale, best_state = -1.0, 0, 0, None
    curve = []
    t0 = time.time()
    fcurve = open(os.path.join(OUT, f"curve_{tag}.jsonl"), "w")
    epoch_rows = sum(n - 1 for n in lens)
    for epoch in range(1, epochs + 1):
        model.train()
        loss_sum, steps = 0.0, 0
        batches = epoch_batches(lens, rng)
        for b in batches:
            items, pos, tg = train_batch([windows[i] for i in b])
            x = model.encode(items, pos)
            real = tg != 0
            h = model.final_norm(x[real])
            logits = h @ model.item[1:].T
            loss = F.cross_entropy(logits, tg[real] - 1)
            rows = int(real.sum())
            scale = rows * len(batches) / epoch_rows if LOSS_WEIGHTS == "positions" else 1.0
            opt.zero_grad(set_to_none=True)
            (loss * scale).backward()
            opt.step()
            loss_sum += loss.item() * rows
            steps += rows
        point = {"epoch": epoch, "loss": loss_sum / steps}
        if validation is not None:
            m = evaluate(model, *validation)
            point.update(ndcg10=m["NDCG@10"], hr10=m["HR@10"])
            if m["NDCG@10"] > best:
                best, best_epoch, stale = m["NDCG@10"], epoch, 0
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
                torch.save(best_state, os.path.join(OUT, f"best_{tag}.pt"))
            else:
                stale += 1
        point["seconds"] = time.time() - t0
        curve.append(point)
        fcurve.write(json.dumps(point) + "\n")
        fcurve.flush()
        log(tag, json.dumps(point))
        if validation is not None and stale >= PATIENCE:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = len(curve)
    return model, best_epoch, best, curve


if __name__ == "__main__":
    T0 = time.time()
    model, best_epoch, best, curve = train(
        train_seqs, MAX_EPOCHS, validation=(train_seqs, valid_tgt), tag="es")
    t_es = time.time() - T0
    log(f"early stopping: best epoch {best_epoch}, valid NDCG@10 {best:.4f}, {t_es:.0f}s")
    # the early-stopped model on the test split too (no refit), for reference
    test_norefit = evaluate(model, refit_seqs, test_tgt)
    log("test (early-stopped model, no refit):", json.dumps(test_norefit))
    refit_epochs = int(os.environ.get("REFIT_EPOCHS", best_epoch))
    model2, _, _, _ = train(refit_seqs, refit_epochs, validation=None, tag="refit")
    test = evaluate(model2, refit_seqs, test_tgt)
    total = time.time() - T0
    res = {"seed": SEED, "best_epoch": best_epoch, "valid_ndcg10": best,
           "epochs_run": len(curve), "refit_epochs": refit_epochs,
           "test_refit": test, "test_norefit": test_norefit,
           "early_stopping_seconds": t_es, "total_seconds": total}
    log(json.dumps(res))
    json.dump(res, open(os.path.join(OUT, f"result_seed{SEED}.json"), "w"), indent=1)
