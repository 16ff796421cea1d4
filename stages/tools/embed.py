"""``python -m stages embed``: allennlp's ``elmo`` command, on the project's model.

One whitespace-tokenized sentence per input line; dataset ``str(i)`` holds
line i's vectors: ``(layers, n_i, D)`` with ``all``, ``(n_i, D)`` with ``top``
(the last LSTM layer) or ``average`` (the mean of the layers); ``mix`` (PyTorch
only) gives the pipeline's output. An empty line yields an empty ``(…, 0, D)``
dataset so indices stay aligned with lines. ``sentence_to_index`` maps each
sentence to its line, as allennlp writes it.

Two engines:

- ``--models-dir``: the corpus streams through offline models, one per length
  bucket (``embed_models``). Lines are read in windows, sorted by length within
  a window so batches waste little padding, run at the largest batch that fits,
  and each window is written as a shard; a killed run resumes from the shards
  already written and the final file is assembled under a temporary name
  (the first shard becomes it, the others' datasets are copied in). A
  bucket's model is opened when its first batch is due: one no sentence
  needs is never opened. Sentences longer than the largest bucket go to the
  PyTorch module (exact, slow) or are refused (``--long fail``). A manifest ``OUTPUT.json`` records
  the counts, padding efficiency, rates and where the time went (opening
  models, inference, writing shards, assembling; building models on a first
  run apart from the end-to-end time).
- otherwise the PyTorch module in batches (``--stateful``: bilm-tf's streaming).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np

from stages.common.atomic import atomic_path, write_json
from stages.common.errors import StageError
from stages.common.hashing import sha256_file
from stages.elmo.charids import batch_ids

MODES = ("all", "top", "average", "mix")
WINDOW = 2048
MANIFEST_SCHEMA = "elmo-embed-manifest/1"
SHARD_SCHEMA = "elmo-embed-progress/1"


class Scanned(NamedTuple):
    lines: int
    longest: int
    bad: List[int]  # 1-based numbers of lines that are not UTF-8
    lengths: Counter  # lines by tokens


def scan(path) -> Scanned:
    """What one read of the input tells before any work: its lines, the most tokens on one, the
    lines that are not UTF-8 and how many lines have each length."""
    path = Path(path)
    if not path.is_file():
        raise StageError(f"INPUT={path}: no such file")
    lines = 0
    bad = []
    lengths: Counter = Counter()
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            lines = number
            try:
                lengths[len(raw.decode("utf-8").split())] += 1
            except UnicodeDecodeError:
                bad.append(number)
    return Scanned(lines, max(lengths, default=0), bad, lengths)


def read_sentences(path) -> list:
    path = Path(path)
    bad = scan(path).bad
    if bad:
        raise _bad_lines(path, bad)
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines()]


def _bad_lines(path, bad: List[int]) -> StageError:
    shown = ", ".join(map(str, bad[:10])) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
    return StageError(f"INPUT={path}: {len(bad)} line(s) are not UTF-8 (line {shown}); convert the file "
                      f"(e.g. iconv -f latin1 -t utf-8) or remove them")


def _windows(path: Path, size: int) -> Iterator[Tuple[int, List[List[str]]]]:
    """(first line index, token lists) per window of ``size`` lines."""
    window, start = [], 0
    with path.open("rb") as handle:
        for index, raw in enumerate(handle):
            window.append(raw.decode("utf-8").split())
            if len(window) == size:
                yield start, window
                window, start = [], index + 1
    if window:
        yield start, window


def select(layers: np.ndarray, mode: str, mix=None) -> np.ndarray:
    """``layers`` is ``(L, n, D)`` for one sentence."""
    if mode == "all":
        return layers
    if mode == "top":
        return layers[-1]
    if mode == "average":
        return layers.mean(axis=0)
    weights, gamma = mix
    return (layers * weights[:, None, None]).sum(axis=0) * gamma


class LazyRunners(Mapping):
    """``{bucket: runner}`` whose runners are opened through ``load_runners({bucket: model})`` when
    first used, so a bucket no sentence needs never loads. (Opening them in a background thread
    was measured on the cpu target: with ONNX Runtime on both cores the loads slowed inference
    about as much as they saved.) ``load_seconds`` is each bucket's opening time; ``wait_seconds``
    the time the caller spent waiting for one."""

    def __init__(self, models: Dict[int, Path], load_runners):
        self.models = dict(sorted(models.items()))
        self._load = load_runners
        self._ready: Dict[int, object] = {}
        self.load_seconds: Dict[int, float] = {}
        self.wait_seconds = 0.0

    def __iter__(self):
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def __contains__(self, bucket) -> bool:
        return bucket in self.models

    def _open(self, bucket: int):
        started = time.perf_counter()
        runner = self._load({bucket: self.models[bucket]})[bucket]
        self.load_seconds[bucket] = time.perf_counter() - started
        return runner

    def __getitem__(self, bucket: int):
        if bucket not in self._ready:
            if bucket not in self.models:
                raise KeyError(bucket)
            started = time.perf_counter()
            self._ready[bucket] = self._open(bucket)
            self.wait_seconds += time.perf_counter() - started
        return self._ready[bucket]


class Streamer:
    """Runs windows of sentences through the bucket models; PyTorch for sentences longer than all buckets."""

    def __init__(self, runners: Mapping, batch: int, options, weights, long: str, threads):
        self.runners = runners  # a dict, or LazyRunners: a runner is only asked for when a batch needs it
        self.buckets = sorted(runners)
        self.batch = batch
        self.options, self.weights, self.long, self.threads = options, weights, long, threads
        self._torch = None
        self.counts = {str(b): 0 for b in self.buckets}
        self.counts.update(long=0, empty=0)
        self.real_tokens = self.computed_tokens = 0
        self.infer_seconds = self.torch_load_seconds = 0.0
        self.shape = None  # (layers, D), from the first window (embed_window)

    def _torch_model(self):
        if self._torch is None:
            import torch

            from stages.elmo.model import load_elmo

            started = time.perf_counter()
            if self.threads:
                torch.set_num_threads(self.threads)
            self._torch = load_elmo(self.options, self.weights)
            self.torch_load_seconds = time.perf_counter() - started
        return self._torch

    def _torch_layers(self, tokens: List[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            layers, _, _ = self._torch_model().layers(torch.from_numpy(batch_ids([tokens])))
        return torch.stack(layers, dim=1).numpy()[0]

    def window(self, start: int, sentences: List[List[str]]) -> Dict[int, np.ndarray]:
        """``{line index: (L, n, D)}`` for every line of the window."""
        out = {}
        groups: Dict[int, List[int]] = {b: [] for b in self.buckets}
        # Shortest first within the window: neighbours in a batch have similar lengths.
        for offset in sorted(range(len(sentences)), key=lambda k: (len(sentences[k]), k)):
            n = len(sentences[offset])
            if n == 0:
                self.counts["empty"] += 1
                continue
            bucket = next((b for b in self.buckets if b >= n), None)
            if bucket is None:
                if self.long == "fail":
                    raise StageError(f"line {start + offset + 1}: {n} tokens, more than the largest bucket "
                                     f"({self.buckets[-1]}); add a larger bucket to WORD_LEN or use LONG=torch")
                self.counts["long"] += 1
                self._torch_model()
                started = time.perf_counter()
                out[start + offset] = self._torch_layers(sentences[offset])
                self.infer_seconds += time.perf_counter() - started
                self.real_tokens += n
                self.computed_tokens += n
                continue
            groups[bucket].append(offset)
        for bucket, offsets in groups.items():
            self.counts[str(bucket)] += len(offsets)
            for first in range(0, len(offsets), self.batch):
                chunk = offsets[first:first + self.batch]
                ids = batch_ids([sentences[k] for k in chunk], word_len=bucket)
                runner = self.runners[bucket]  # opened (or waited for) outside the inference time
                started = time.perf_counter()
                layers = runner.infer({"input": ids})["output"]  # [B, L, W, D]
                self.infer_seconds += time.perf_counter() - started
                for row, k in enumerate(chunk):
                    n = len(sentences[k])
                    out[start + k] = layers[row, :, :n]
                    self.real_tokens += n
                self.computed_tokens += len(chunk) * bucket
        return out


def _write_shard(path: Path, vectors: Dict[int, np.ndarray], sentences, start: int, mode: str, dim, layers):
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as out:
        for offset in range(len(sentences)):
            index = start + offset
            if index in vectors:
                data = select(vectors[index], mode)
            else:
                data = np.zeros((layers, 0, dim) if mode == "all" else (0, dim), dtype=np.float32)
            out.create_dataset(str(index), data=np.asarray(data, dtype=np.float32))


def embed_offline(input_path, output_path, *, options, weights, models: Dict[int, Path], mode: str = "all",
                  batch: int = 32, long: str = "torch", threads=None, labels=None, progress=True,
                  window: int = WINDOW, scanned=None, weights_sha256: str = "", target: str = "cpu",
                  load_runners=None, described=None, started=None,
                  build_seconds: float = 0.0, shared_dir=None, cluster=None, open_plan: Optional[dict] = None) -> dict:
    """Stream ``input_path`` through the bucket ``models``; write ``output_path`` and its manifest.

    ``load_runners(models) -> {bucket: runner}`` gives the target's runners (default: ONNX Runtime
    on the cpu); it is called per bucket (``{bucket: model}``) when that bucket's first batch is
    due. ``described`` is each model's record (default: read from the cpu model
    manifests). ``scanned`` (``scan``'s result) and ``weights_sha256`` spare a caller who has them
    a second pass. ``started`` (a ``time.perf_counter()`` reading) is when the user's wait began,
    if before this call; ``build_seconds`` of it went into building models, reported apart from
    the end-to-end time. ``shared_dir`` holds the shards folder (default: beside the output);
    ``cluster(input_path=, parts=, window=, settings=, models=) -> Work`` computes the missing
    shards elsewhere (``embed_ray``) instead of here. ``open_plan`` (how the runners were told to
    open, e.g. which buckets pre-pack) goes into the manifest as it is."""
    import h5py

    if mode not in ("all", "top", "average"):
        raise StageError(f"LAYERS={mode}: use all, top or average")
    if long not in ("torch", "fail"):
        raise StageError(f"LONG={long}: use torch (embed with the PyTorch module) or fail")
    input_path, output_path = Path(input_path), Path(output_path)
    started = time.perf_counter() if started is None else started
    scanned = scanned or scan(input_path)
    lines, bad = scanned.lines, scanned.bad
    if bad:
        raise _bad_lines(input_path, bad)
    input_sha = sha256_file(input_path)
    from stages.tools.embed_models import describe_models

    described = described if described is not None else describe_models(models)
    settings = {"schema": SHARD_SCHEMA, "input_sha256": input_sha, "mode": mode, "batch": batch, "long": long,
                "target": target,
                "window": window, "models": {k: v["sha256"] for k, v in described.items()},
                "prepacked": (open_plan or {}).get("prepacked"),
                "weights_sha256": weights_sha256 or sha256_file(weights)}
    parts = parts_folder(output_path, shared_dir)
    recorded = parts / "settings.json"
    try:
        same = json.loads(recorded.read_text(encoding="utf-8")) == settings
    except (OSError, ValueError):
        same = False
    if not same:
        shutil.rmtree(str(parts), ignore_errors=True)
        parts.mkdir(parents=True)
        write_json(recorded, settings)

    if cluster is None:
        work = _embed_here(input_path, parts, lines, window, mode, models, options, weights, batch, long, threads,
                           load_runners, progress, started, build_seconds)
    else:  # another engine computes the missing shards (``embed_ray``): same windows, same shard files
        work = cluster(input_path=input_path, parts=parts, window=window, settings=settings, models=models)
    resumed, writing = work.resumed, work.writing

    assembling = time.perf_counter()
    index = {}
    with atomic_path(output_path) as tmp:
        first = parts / _shard_name(0, window)
        if first.is_file():
            # The first window's shard becomes the output; a run killed from here on recomputes it.
            try:
                os.replace(first, tmp)
            except OSError:  # the shards are on another file system (EMBED_SHARED_DIR): copy it
                shutil.copyfile(first, tmp)
        with h5py.File(tmp, "a" if tmp.is_file() else "w") as out:
            for start, sentences in _windows(input_path, window):
                if start:
                    with h5py.File(parts / _shard_name(start, window), "r") as shard:
                        for offset in range(len(sentences)):
                            name = str(start + offset)
                            shard.copy(shard[name], out, name=name)
                for offset, tokens in enumerate(sentences):
                    index.setdefault(" ".join(tokens), start + offset)
            out.create_dataset("sentence_to_index", data=np.array([json.dumps(index)], dtype=h5py.string_dtype()))
            out.attrs["weights_sha256"] = settings["weights_sha256"]
            out.attrs["models"] = json.dumps(described)
            out.attrs["target"] = target
            out.attrs["layers"] = mode
            for key, value in (labels or {}).items():
                out.attrs[key] = value
    shutil.rmtree(str(parts), ignore_errors=True)
    output_sha = sha256_file(output_path)
    assembling = time.perf_counter() - assembling
    total = time.perf_counter() - started - build_seconds
    computed = max(work.computed_tokens, 1)
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "input": str(input_path),
        "input_sha256": input_sha,
        "output": str(output_path),
        "output_sha256": output_sha,
        "layers": mode,
        "target": target,
        "models": described,
        "buckets": [int(b) for b in models],
        "batch": batch,
        "lines": lines,
        "counts": work.counts,
        "resumed_sentences": resumed,
        "padding_efficiency": work.real_tokens / computed,
        # end_to_end: everything the user waits for once the models exist (hashing, reading, opening
        # the models, inference, writing, assembling); building models on a first run is apart.
        "seconds": {"end_to_end": total, "inference": work.infer_seconds,
                    "models_opened": {str(b): round(s, 3) for b, s in sorted(work.load_seconds.items())},
                    "waiting_for_models": work.wait_seconds, "pytorch_load": work.torch_load_seconds,
                    "writing_shards": writing, "assembling": assembling, "building_models": build_seconds},
        # Rates over this run's work (a resumed run counts only what it computed).
        "sentences_per_s": {"end_to_end": (lines - resumed) / total if total else None,
                            "inference": (lines - resumed - work.counts["empty"]) / work.infer_seconds
                            if work.infer_seconds else None},
        "tokens_per_s": {"end_to_end": work.real_tokens / total if total else None,
                         "inference": work.real_tokens / work.infer_seconds if work.infer_seconds else None},
        "open_plan": open_plan,
        "labels": labels or {},
    }
    write_json(str(output_path) + ".json", manifest)
    return manifest


def parts_folder(output_path, shared_dir=None) -> Path:
    """The shards folder of ``output_path``: ``.<name>.parts`` beside it, or in ``shared_dir``."""
    output_path = Path(output_path)
    return Path(shared_dir or output_path.parent) / f".{output_path.name}.parts"


class Work:
    """What computing the shards did, for the manifest: counts, tokens and where the time went."""

    def __init__(self, buckets=()):
        self.counts = {str(b): 0 for b in sorted(buckets)}
        self.counts.update(long=0, empty=0)
        self.real_tokens = self.computed_tokens = 0
        self.infer_seconds = self.torch_load_seconds = self.wait_seconds = self.writing = 0.0
        self.load_seconds: Dict[int, float] = {}
        self.resumed = 0

    def add(self, stats: dict) -> None:
        """Add one engine's ``stats`` (``as_stats``): counts and times summed, model opening at its longest."""
        for key, value in stats["counts"].items():
            self.counts[key] = self.counts.get(key, 0) + value
        for key in ("real_tokens", "computed_tokens", "infer_seconds", "torch_load_seconds", "wait_seconds",
                    "writing", "resumed"):
            setattr(self, key, getattr(self, key) + stats[key])
        for bucket, seconds in stats["load_seconds"].items():
            self.load_seconds[int(bucket)] = max(self.load_seconds.get(int(bucket), 0.0), seconds)


def as_stats(streamer: "Streamer", runners, writing: float, resumed: int) -> dict:
    """A streamer's and its runners' figures as plain data (``Work.add``), e.g. to send between processes."""
    return {"counts": dict(streamer.counts), "real_tokens": streamer.real_tokens,
            "computed_tokens": streamer.computed_tokens, "infer_seconds": streamer.infer_seconds,
            "torch_load_seconds": streamer.torch_load_seconds, "wait_seconds": getattr(runners, "wait_seconds", 0.0),
            "load_seconds": dict(getattr(runners, "load_seconds", {})), "writing": writing, "resumed": resumed}


def embed_window(streamer: "Streamer", shard: Path, start: int, sentences, mode: str) -> float:
    """Run one window and write its shard (atomically: a shard that exists is complete); the seconds
    spent writing."""
    vectors = streamer.window(start, sentences)
    if streamer.shape is None:
        if vectors:
            sample = next(iter(vectors.values()))
            streamer.shape = (sample.shape[0], sample.shape[-1])
        else:
            streamer.shape = _shape_of(streamer.runners)
    n_layers, dim = streamer.shape
    write_started = time.perf_counter()
    _write_shard(shard, vectors, sentences, start, mode, dim, n_layers)
    return time.perf_counter() - write_started


def _embed_here(input_path, parts, lines, window, mode, models, options, weights, batch, long, threads,
                load_runners, progress, started, build_seconds) -> Work:
    """The single-host engine: every missing shard computed in this process."""
    from tqdm import tqdm

    from stages.tools.embed_models import load_cpu_runners

    runners = LazyRunners(models, load_runners or (lambda paths: load_cpu_runners(paths, threads)))
    streamer = Streamer(runners, batch, options, weights, long, threads)
    resumed = 0
    writing = 0.0
    bar = tqdm(total=lines, unit="sent", desc="embed", disable=None if progress else True)
    try:
        for start, sentences in _windows(input_path, window):
            shard = parts / _shard_name(start, window)
            if shard.is_file():
                resumed += len(sentences)
                bar.update(len(sentences))
                continue
            writing += embed_window(streamer, shard, start, sentences, mode)
            bar.update(len(sentences))
            seconds = time.perf_counter() - started - build_seconds
            bar.set_postfix(tokens_per_s=f"{streamer.real_tokens / max(seconds, 1e-9):.0f}")
    finally:
        bar.close()
    work = Work(models)
    work.add(as_stats(streamer, runners, writing, resumed))
    return work


def _shard_name(start: int, window: int) -> str:
    return f"shard-{start // window:06d}.h5"


def _shape_of(runners) -> Tuple[int, int]:
    """(layers, D) from a one-sentence run: for a window of empty lines only."""
    bucket = min(runners)
    ids = batch_ids([["a"]], word_len=bucket)
    out = runners[bucket].infer({"input": ids})["output"]
    return out.shape[1], out.shape[-1]


def embed_file(input_path, output_path, *, options, weights, mode="all", batch_size=64, stateful=False,
               progress=True) -> int:
    """The PyTorch engine: the whole file in batches of ``batch_size``."""
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
    mix = (model.mix_weights.detach().numpy(), float(model.mix_gamma))
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
                vectors = select(stacked[row, :, : len(tokens)], mode, mix)
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
    parser.add_argument("--options", default="")
    parser.add_argument("--weights", default="")
    parser.add_argument("--source", default="", help="weights source.json (make weights) instead of --options/--weights")
    group = parser.add_mutually_exclusive_group()
    for mode in MODES:
        group.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode)
    group.add_argument("--layers", dest="mode", choices=MODES)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--stateful", action="store_true",
                        help="carry each row's LSTM state into the next batch (bilm-tf streaming)")
    parser.add_argument("--models-dir", default="",
                        help="stream through offline bucket models cached here (built on first use)")
    parser.add_argument("--buckets", default="auto", help="bucket WORD_LENs, e.g. '16 32 64' (auto: cover the input)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8"),
                        help="cpu target: the offline models' precision")
    parser.add_argument("--target", default="cpu", choices=("cpu", "ascend"))
    parser.add_argument("--devices", default="0", help="ascend: NPU ids, comma-separated; one session per device")
    parser.add_argument("--om-batch", default="", help="ascend: the om's batch sizes, e.g. '1 4 8 16 32'")
    parser.add_argument("--soc-version", default="", help="ascend: atc --soc_version (default: from npu-smi)")
    parser.add_argument("--precision-mode", default="", help="ascend: atc --precision_mode")
    parser.add_argument("--long", default="torch", choices=("torch", "fail"))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--prepack", default="auto", choices=("auto", "on", "off"),
                        help="cpu: pre-pack each bucket's weights when opening it (auto: where enough batches "
                             "will use it to pay back the slower opening)")
    parser.add_argument("--window", type=int, default=WINDOW,
                        help="lines sorted together and written as one resumable shard")
    parser.add_argument("--ray-address", default="",
                        help="compute the shards on the Ray cluster at host:port (embed_ray); empty: on this host")
    parser.add_argument("--shared-dir", default="",
                        help="the shards folder's parent, one every node reaches (default: beside the output)")
    parser.set_defaults(mode="all")


def run(args) -> int:
    started = time.perf_counter()
    labels = {}
    if args.source:
        from stages.sources.weights import load_source

        source = load_source(args.source)
        options, weights = source["options"], source["weights"]
        labels = {"weights_label": source["label"], "weights_synthetic": str(bool(source["synthetic"]))}
    elif args.options and args.weights:
        options, weights = args.options, args.weights
    else:
        raise StageError("give --source (make weights) or both --options and --weights")
    if not args.models_dir:
        count = embed_file(args.input_file, args.output_file, options=options, weights=weights,
                           mode=args.mode, batch_size=args.batch_size, stateful=args.stateful)
        print(f"embedded {count} sentences into {args.output_file} ({args.mode})")
        return 0
    if args.stateful:
        raise StageError("--stateful needs the PyTorch engine (leave out --models-dir)")
    if args.target == "ascend":  # before the input is read: a typo costs no time
        from stages.backends.ascend.target import parse_batches, parse_devices

        args.om_batch = parse_batches(args.om_batch) if args.om_batch.strip() else [1, args.batch_size]
        args.devices = parse_devices(args.devices)
    from stages.tools.embed_models import parse_buckets

    scanned = scan(args.input_file)
    if scanned[2]:
        raise _bad_lines(args.input_file, scanned[2])
    buckets = parse_buckets(args.buckets, scanned[1])
    weights_sha256 = sha256_file(weights)
    open_plan = _cpu_open_plan(args, scanned, buckets) if args.target == "cpu" else None
    cluster = None
    if args.ray_address:  # joined before minutes of building, so a wrong address fails at once
        from stages.tools.embed_ray import RayEngine

        cluster = RayEngine(args.ray_address, target=args.target, options=options, weights=weights,
                            weights_sha256=weights_sha256, batch=args.batch_size, long=args.long, mode=args.mode,
                            threads=args.threads or None, prepack=_prepack_of(open_plan))
    try:
        return _run_offline(args, started, labels, options, weights, scanned, buckets, weights_sha256, cluster,
                            open_plan)
    finally:
        if cluster is not None:
            cluster.close()


def _cpu_open_plan(args, scanned: Scanned, buckets: List[int]) -> dict:
    """Which cpu buckets open pre-packed (``embed_models.prepack_plan``): here and on every Ray actor
    alike, since a packed and an unpacked session may round the last bit differently."""
    from stages.tools.embed_models import planned_calls, prepack_plan

    windows = -(-scanned.lines // args.window)
    calls = planned_calls(scanned.lengths, buckets, args.batch_size, windows)
    prepack = prepack_plan(calls, args.precision, args.prepack)
    return {"asked": args.prepack, "planned_calls": {str(b): n for b, n in calls.items()},
            "prepacked": {str(b): p for b, p in prepack.items()}}


def _prepack_of(open_plan: Optional[dict]) -> Optional[Dict[int, bool]]:
    return {int(b): p for b, p in open_plan["prepacked"].items()} if open_plan else None


def _run_offline(args, started, labels, options, weights, scanned, buckets, weights_sha256, cluster,
                 open_plan) -> int:
    from stages.tools.embed_models import bucket_models

    described = load_runners = None
    building = time.perf_counter()
    if args.target == "ascend":
        from stages.tools.embed_ascend import ascend_bucket_models

        models, described, load_runners = ascend_bucket_models(
            options, weights, buckets, args.models_dir, weights_sha256=weights_sha256,
            om_batches=args.om_batch, devices=args.devices, soc_version=args.soc_version,
            precision_mode=args.precision_mode)
        labels["precision"] = args.precision_mode or "atc default"
    else:
        models = bucket_models(options, weights, buckets, args.models_dir, args.precision, weights_sha256)
        labels["precision"] = args.precision
        from stages.tools.embed_models import load_cpu_runners

        threads, prepack = args.threads or None, _prepack_of(open_plan)
        load_runners = lambda paths: load_cpu_runners(paths, threads, prepack=prepack)  # noqa: E731
    building = time.perf_counter() - building
    manifest = embed_offline(args.input_file, args.output_file, options=options, weights=weights, models=models,
                             mode=args.mode, batch=args.batch_size, long=args.long, threads=args.threads or None,
                             labels=labels, window=args.window, scanned=scanned, weights_sha256=weights_sha256,
                             target=args.target, load_runners=load_runners, described=described,
                             started=started, build_seconds=building, shared_dir=args.shared_dir or None,
                             cluster=cluster, open_plan=open_plan)
    rates = manifest["tokens_per_s"]
    print(f"embedded {manifest['lines']} lines into {args.output_file} ({args.mode}, buckets "
          f"{' '.join(map(str, manifest['buckets']))}, {args.target} {labels['precision']}): counts {manifest['counts']}, padding "
          f"efficiency {manifest['padding_efficiency']:.2f}, {rates['end_to_end'] or 0:.0f} tokens/s end to end, "
          f"{rates['inference'] or 0:.0f} inference only")
    return 0
