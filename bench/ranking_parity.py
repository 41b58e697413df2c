"""The PyTorch side of `deno task bench ranking_parity`: infer's exact item ranking recomputed.

  python3 bench/ranking_parity.py DIR PREDICTIONS.jsonl...

DIR holds model/ (a transformers checkpoint), run/ (the toolkit's LoRA adapter in PEFT's layout,
with its intra-position table and added vocabulary rows in adapter_model.safetensors) and
prompts.json (each record's part A as the toolkit builds it: ids, inter- and intra-positions, the
mask index; the [S] id, the vocabulary size with the added rows, each item's first token and id).
For each prompt: the base model in transformers with PEFT's adapter, the input rows (embedding and
added rows) plus the intra table's row at each token, [S] appended at intra position 1 and rotary
position mask index + 1, a causal mask; the log-softmax over every row at [S], read at each item's
first token (renormalised over the items for a file whose name says `trie`). Compares the top
scores with the predictions files' and prints one JSON line. `moved` is how far the scores move
with [S] at rotary position mask index + 0 instead: the check can see a position off by one.
"""

import json
import sys

import safetensors.torch as st
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM


def main():
    root, predictions = sys.argv[1], sys.argv[2:]
    d = json.load(open(f"{root}/prompts.json"))
    base = AutoModelForCausalLM.from_pretrained(
        f"{root}/model", dtype=torch.float32, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, f"{root}/run").eval()
    extra = st.load_file(f"{root}/run/adapter_model.safetensors")
    intra_table = extra["base_model.model.model.intra_position_embeddings.weight"]
    rows = torch.cat([base.get_input_embeddings().weight.detach(),
                      extra["base_model.model.model.embed_tokens.added.weight"]], 0)
    if base.config.tie_word_embeddings:
        out_rows = rows
    else:
        out_rows = torch.cat([base.lm_head.weight.detach(),
                              extra["base_model.model.lm_head.added.weight"]], 0)
    if rows.shape[0] != d["vocab"]:
        raise SystemExit(f"{rows.shape[0]} input rows for a vocabulary of {d['vocab']}")
    first = torch.tensor(d["firstTokens"])

    def scores(p, offset=1):
        ids = p["ids"] + [d["sop"]]
        intra = torch.tensor([p["intra"] + [1]]).clamp(max=intra_table.shape[0] - 1)
        rope = p["inter"] + [p["maskIndex"] + offset]
        x = rows[torch.tensor([ids])] + intra_table[intra]
        n = len(ids)
        causal = torch.ones(n, n, dtype=torch.bool).tril()
        mask = torch.zeros(1, 1, n, n).masked_fill(~causal, torch.finfo(torch.float32).min)
        with torch.no_grad():
            out = model(inputs_embeds=x, position_ids=torch.tensor([rope]), attention_mask=mask,
                        output_hidden_states=True)
            logits = out_rows @ out.hidden_states[-1][0, -1]
        return torch.log_softmax(logits.double(), -1)[first]

    result = {}
    for path in predictions:
        trie = "trie" in path.rsplit("/", 1)[-1]
        lines = {line["id"]: line for line in map(json.loads, open(path))}
        worst = moved = 0.0
        same = 0
        for p in d["prompts"]:
            s, off = scores(p), scores(p, 0)
            if trie:
                s, off = s - torch.logsumexp(s, 0), off - torch.logsumexp(off, 0)
            given = lines[p["id"]]["predictions"]
            order = torch.argsort(-s, stable=True)[: len(given)].tolist()
            same += [d["itemIds"][i] for i in order] == [q["item_id"] for q in given]
            for q in given:
                worst = max(worst, abs(float(s[d["itemIds"].index(q["item_id"])]) - q["score"]))
            moved = max(moved, float((off - s).abs().max()))
        result["trie_softmax" if trie else "full_softmax"] = {
            "records": len(d["prompts"]),
            "max_abs_diff": float(f"{worst:.3g}"),
            "orders_equal": same,
            "moved": float(f"{moved:.3g}"),
        }
    import peft
    import transformers
    print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__,
                      "peft": peft.__version__, **result}))


if __name__ == "__main__":
    main()
