"""``python -m stages embed``: allennlp's ``elmo`` command, on the project's model.

One whitespace-tokenized sentence per input line; dataset ``str(i)`` holds
line i's vectors: ``(layers, n_i, D)`` with ``--all``, ``(n_i, D)`` with
``--top`` (the last LSTM layer) or ``--average`` (the mean of the layers).
``--mix`` gives the pipeline's output (allennlp ``Elmo``'s untrained scalar
mix). An empty line yields an empty ``(…, 0, D)`` dataset so indices stay
aligned with lines. ``sentence_to_index`` maps each sentence to its line, as
allennlp writes it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stages.common.atomic import atomic_path
from stages.elmo.charids import batch_ids
from stages.common.errors import StageError

MODES = ("all", "top", "average", "mix")


def read_sentences(path) -> list:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StageError(f"{path}: input file not found")
    except UnicodeDecodeError as exc:
        raise StageError(f"{path}: not UTF-8 (byte {exc.start}); convert it with iconv first")
    return [line.split() for line in text.splitlines()]


def select(layers: np.ndarray, mode: str, model) -> np.ndarray:
    """``layers`` is ``(L, n, D)`` for one sentence."""
    if mode == "all":
        return layers
    if mode == "top":
        return layers[-1]
    if mode == "average":
        return layers.mean(axis=0)
    weights = model.mix_weights.numpy()[:, None, None]
    return (layers * weights).sum(axis=0) * float(model.mix_gamma)


def embed_file(input_path, output_path, *, options, weights, mode="all", batch_size=64, stateful=False,
               progress=True) -> int:
    import h5py
    import torch
    from tqdm import tqdm

    from stages.elmo.model import StatefulElmo, load_elmo

    if mode not in MODES:
        raise StageError(f"unknown output mode {mode!r}; use one of {', '.join(MODES)}")
    if batch_size < 1:
        raise StageError("--batch-size must be at least 1")
    sentences = read_sentences(input_path)
    model = load_elmo(options, weights)
    stream = StatefulElmo(model) if stateful else None
    with atomic_path(output_path) as tmp, h5py.File(tmp, "w") as out:
        bar = tqdm(total=len(sentences), unit="sent", disable=None if progress else True, desc="embed")
        for start in range(0, len(sentences), batch_size):
            chunk = sentences[start : start + batch_size]
            ids = torch.from_numpy(batch_ids(chunk))
            with torch.no_grad():
                if stream is not None:
                    layers, _ = stream.layers(ids)
                else:
                    layers, _, _ = model.layers(ids)
            stacked = torch.stack(layers, dim=1).numpy()  # [B, L, W, D]
            for row, tokens in enumerate(chunk):
                vectors = select(stacked[row, :, : len(tokens)], mode, model)
                out.create_dataset(str(start + row), data=vectors.astype(np.float32))
            bar.update(len(chunk))
        bar.close()
        index = {}
        for i, tokens in enumerate(sentences):
            index.setdefault(" ".join(tokens), i)
        out.create_dataset("sentence_to_index", data=np.array([json.dumps(index)], dtype=h5py.string_dtype()))
    return len(sentences)


COMMAND = "embed"
COMMAND_HELP = dict(help="ELMo vectors for a text file into HDF5 (like allennlp elmo)")


def add_arguments(parser) -> None:
    parser.add_argument("input_file")
    parser.add_argument("output_file")
    parser.add_argument("--options", required=True)
    parser.add_argument("--weights", required=True)
    group = parser.add_mutually_exclusive_group()
    for mode in MODES:
        group.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--stateful", action="store_true",
                        help="carry each row's LSTM state into the next batch (bilm-tf streaming)")
    parser.set_defaults(mode="all")


def run(args) -> int:
    count = embed_file(args.input_file, args.output_file, options=args.options, weights=args.weights,
                       mode=args.mode, batch_size=args.batch_size, stateful=args.stateful)
    print(f"embedded {count} sentences into {args.output_file} ({args.mode})")
    return 0
