"""Paired comparison of two prediction files on the same test records: HR@k and NDCG@k of each,
their per-record difference and its standard error (the figure docs/results.md quotes as "paired
over the users"). Records are matched by id; the target is the record's first target entity in
the dataset's split file; ties and missing records are not special-cased (both files must answer
the same records with real items, as `bench quality` writes them).

  python3 bench/paired_se.py DATA/test.jsonl A.jsonl B.jsonl

For a `bench quality` directory Q: DATA = Q/data, A = Q/test.jsonl (the two stages), B =
Q/first-test/sasrec.jsonl (SASRec alone) or Q/test-lm-alone.jsonl.
"""
import json
import math
import sys


def predictions(path):
    out = {}
    for line in open(path):
        r = json.loads(line)
        out[r["id"]] = [p["entity"] for p in r["predictions"]]
    return out


def main(split, a_path, b_path):
    target = {}
    for line in open(split):
        r = json.loads(line)
        if r.get("target"):
            target[r["id"]] = r["target"][0]["entity"]
    a, b = predictions(a_path), predictions(b_path)
    ids = [i for i in a if i in b and i in target]
    n = len(ids)

    def at(preds, t, k):
        top = preds[:k]
        return (1.0, 1 / math.log2(top.index(t) + 2)) if t in top else (0.0, 0.0)

    def mean_se(xs):
        mu = sum(xs) / n
        return mu, math.sqrt(sum((x - mu) ** 2 for x in xs) / (n - 1) / n)

    result = {"records": n}
    for k in (5, 10):
        pairs = [(at(a[i], target[i], k), at(b[i], target[i], k)) for i in ids]
        for m, name in ((0, "HR"), (1, "NDCG")):
            xa = sum(p[0][m] for p in pairs) / n
            xb = sum(p[1][m] for p in pairs) / n
            diff, se = mean_se([p[0][m] - p[1][m] for p in pairs])
            result[f"{name}@{k}"] = {"a": round(xa, 4), "b": round(xb, 4), "diff": round(diff, 4),
                                     "se": round(se, 4), "relative": round(xa / xb - 1, 4) if xb else None}
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python3 bench/paired_se.py SPLIT.jsonl A.jsonl B.jsonl")
    main(*sys.argv[1:])
