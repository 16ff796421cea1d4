"""A generated corpus shaped like the 1B Word held-out set, for measuring the accuracy stage at
corpus scale (issue 17) without downloading it.

    .venv/bin/python -m tests.heldout_like OUT_DIR [--files 50] [--lines 6130] [--seed 0]

writes ``OUT_DIR/news.en.heldout-000NN-of-00050`` (point ``DATASET_DIR`` at it). Sentence lengths
follow a log-normal fitted to news text (mean about 27 tokens, about 4 % of at most 8 tokens: the
held-out set has 12,532 of 306,500 lines within 8 tokens); tokens are drawn from the shipped
sample's vocabulary, so character ids look like real words. Deterministic for a seed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "heldout-monolingual.tokenized.shuffled"
# log-normal of sentence length: mean ~27 tokens, P(length <= 8) ~ 4 %
MU, SIGMA = 3.134, 0.571


def vocabulary() -> list:
    words = sorted({w for p in SAMPLE.glob("news.en.heldout-*") for line in p.read_text("utf-8").split("\n")
                    for w in line.split()})
    return words or ["the", "of", "news", "said", "."]


def generate(out_dir, files: int = 50, lines: int = 6130, seed: int = 0) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    words = np.asarray(vocabulary(), dtype=object)
    rng = np.random.default_rng(seed)
    total = short = 0
    for index in range(files):
        lengths = np.maximum(1, np.rint(rng.lognormal(MU, SIGMA, lines))).astype(int)
        picks = rng.integers(0, len(words), int(lengths.sum()))
        text, start = [], 0
        for n in lengths:
            text.append(" ".join(words[picks[start : start + n]]))
            start += n
        (out / f"news.en.heldout-{index:05d}-of-00050").write_text("\n".join(text) + "\n", encoding="utf-8")
        total += lines
        short += int((lengths <= 8).sum())
    return {"files": files, "lines": total, "at_most_8_tokens": short}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--lines", type=int, default=6130)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    made = generate(args.out, args.files, args.lines, args.seed)
    print(f"{made['files']} files, {made['lines']} lines, {made['at_most_8_tokens']} of at most 8 tokens -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
