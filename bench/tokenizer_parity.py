"""The Rust `tokenizers` library's side of `deno task bench tokenizer_parity`.

Writes into OUT_DIR: `texts.json` (Beauty's titles, a seeded sample of Musical Instruments'
reviews and summaries, and edge cases), `ids.json` (3,000 seeded random id sequences of Llama 2's
vocabulary, half of their ids byte tokens), one `NAME.json` tokenizer file per variant (the real
files given, and Llama 2's vocabulary behind Metaspace pre-tokenizers and decoders of several
settings), and `rust.json`: for every variant, the library's encoding of every text (no special
tokens added), its decoding of those encodings and its decoding of the random sequences. Prints one
JSON line: the library's version and the counts. For the real files, also 1,000 random id
sequences of their whole vocabulary, one id in seven a special token and half the others among
the first 259 ids (single bytes in all three), decoded without the special tokens (`skip_ids`,
`skip_decoded`).

Usage: python3 bench/tokenizer_parity.py OUT_DIR BEAUTY_ITEMS_CSV REVIEWS_JSON_GZ NAME=TOKENIZER_JSON...
(the Llama 2 file is the one named llama2)
"""

import copy
import csv
import gzip
import json
import os
import random
import sys

import tokenizers
from tokenizers import Tokenizer

EDGE_CASES = [
    "", " ", "  ", "a  b", "a   b", " lead", "trail ", "tab\there", "line\nbreak", "two\n\nbreaks",
    "\r\nwindows", "nbsp\u00a0x", "ideographic\u3000x", "cafe\u0301 decomposed", "caf\u00e9 composed",
    "\uff26\uff35\uff2c\uff2c width", "emoji \U0001f600\U0001f44d\U0001f3fd ok", "\u4e2d\u6587 \u6d4b\u8bd5",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\ud55c\uad6d\uc5b4", "\u00c5\u00c4\u00d6 \u00e5\u00e4\u00f6",
    "I'M HE'S they'Re", "12345 678.90", "$9.99 50% off!!!", "...", "--", "a__b", "x\u200by zero width",
    "\u2581already a mark", "<0x41> literal", "C++ & C#", "\U0001d518\U0001d52b\U0001d526 math letters",
    "\x00nul", "tab\t\tdouble", "   many   spaces   ", "\U00020e15\U00020e16 rare CJK",
    "\ufeffbyte-order mark", "x\ufeff", "\ufffd replacement",
]


def texts(items_csv, reviews_gz):
    out = [row["title"] for row in csv.DictReader(open(items_csv, encoding="utf-8"))]
    with gzip.open(reviews_gz, "rt", encoding="utf-8") as f:
        reviews = [json.loads(line) for line in f]
    for r in random.Random(1).sample(reviews, 3000):
        out += [r.get("reviewText", ""), r.get("summary", "")]
    return out + EDGE_CASES


def metaspace_variants(llama2):
    """Llama 2's vocabulary behind Metaspace pre-tokenizers and decoders of several settings."""
    ms = lambda **k: dict({"type": "Metaspace", "replacement": "\u2581"}, **k)
    own_decoder = llama2["decoder"]
    settings = {
        "metaspace_split": (ms(prepend_scheme="first", split=True), own_decoder),
        "metaspace_no_split": (ms(prepend_scheme="first", split=False), own_decoder),
        "metaspace_legacy": (ms(add_prefix_space=True), ms(add_prefix_space=True)),
        "metaspace_never": (ms(prepend_scheme="never", split=True), ms(prepend_scheme="never")),
        "metaspace_after_split": (
            {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, ms(prepend_scheme="first", split=True)]},
            own_decoder,
        ),
        "metaspace_after_digits": (
            {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, ms(prepend_scheme="first", split=True)]},
            own_decoder,
        ),
        "metaspace_decoder": (
            {"type": "Sequence", "pretokenizers": [ms(prepend_scheme="always", split=True)]},
            {"type": "Sequence", "decoders": [ms(prepend_scheme="always"), {"type": "ByteFallback"}, {"type": "Fuse"}]},
        ),
    }
    for name, (pre, dec) in settings.items():
        j = copy.deepcopy(llama2)
        j["normalizer"], j["pre_tokenizer"], j["decoder"] = None, pre, dec
        yield name, j


def main():
    out_dir, items_csv, reviews_gz = sys.argv[1:4]
    files = dict(arg.split("=", 1) for arg in sys.argv[4:])
    all_texts = texts(items_csv, reviews_gz)
    json.dump(all_texts, open(os.path.join(out_dir, "texts.json"), "w"))
    rng = random.Random(3)
    seqs = [
        [rng.randint(3, 258) if rng.random() < 0.5 else rng.randint(259, 31999) for _ in range(rng.randint(1, 12))]
        for _ in range(3000)
    ]
    json.dump(seqs, open(os.path.join(out_dir, "ids.json"), "w"))
    variants = {name: json.load(open(path, encoding="utf-8")) for name, path in files.items()}
    variants.update(metaspace_variants(variants["llama2"]))
    rust = {}
    for name, j in variants.items():
        path = os.path.join(out_dir, name + ".json")
        json.dump(j, open(path, "w"))
        t = Tokenizer.from_file(path)
        ids = [t.encode(x, add_special_tokens=False).ids for x in all_texts]
        entry = {"ids": ids, "decoded": [t.decode(i, skip_special_tokens=False) for i in ids]}
        if name == "llama2" or name.startswith("metaspace"):
            entry["random_decoded"] = [t.decode(s, skip_special_tokens=False) for s in seqs]
        if name in files:
            # Random ids of the whole vocabulary, one in seven a special token, decoded without them.
            specials = [a["id"] for a in j.get("added_tokens", []) if a.get("special")]
            size = t.get_vocab_size()
            # Half the other ids among the first 259, which are single bytes in all three files.
            pick = lambda: (rng.choice(specials) if specials and rng.random() < 1 / 7
                            else rng.randrange(259) if rng.random() < 0.5 else rng.randrange(size))
            with_specials = [[pick() for _ in range(rng.randint(1, 12))] for _ in range(1000)]
            entry["skip_ids"] = with_specials
            entry["skip_decoded"] = [t.decode(s, skip_special_tokens=True) for s in with_specials]
        rust[name] = entry
    json.dump(rust, open(os.path.join(out_dir, "rust.json"), "w"))
    print(json.dumps({"tokenizers": tokenizers.__version__, "texts": len(all_texts), "random_ids": len(seqs),
                      "variants": list(variants)}))


if __name__ == "__main__":
    main()
