"""Which runtime serves each batch size of the cpu target's offline model.

ONNX Runtime serves every batch size from the saved offline model (``*.ort.onnx``).
The fp32 model may also carry OpenVINO's compiled model for batch 1
(``*.b1.openvino``, exported the way atc writes an ``.om``); the manifest's
``engines`` then says that OpenVINO serves batch 1 and ONNX Runtime the rest.

Why batch 1, and why measured on the host that compiles: at batch 1 each LSTM
step reads 40 MB of weights for one vector, and the two runtimes' GEMV kernels
and per-node overheads trade places by CPU. OpenVINO f32 ran batch 1 at 1.10x
ONNX Runtime on an Intel Xeon (AVX-512), and level on an AMD EPYC (AVX2:
0.96-1.04x over six ``make perf`` runs); ONNX Runtime was ahead at batch 32 on
the EPYC. So ``auto`` times both at batch 1 on this host, alternating, and keeps
OpenVINO only where it was faster. int8 stays on ONNX Runtime: its MatMulNBits
GEMV ran 1.2-1.5x OpenVINO + NNCF at batch 1.
"""
from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from stages.common.errors import StageError

CHOICES = ("auto", "onnxruntime", "openvino")
ONNXRUNTIME, OPENVINO = "onnxruntime", "openvino"
OPENVINO_BATCH = 1
PROBE_ROUNDS, PROBE_SECONDS = 6, 0.6  # per runtime and round; the probe takes about 10 s at full size


def openvino_path(model_path) -> Path:
    """``x.ort.onnx`` -> ``x.b1.openvino``: the compiled batch-1 model beside the offline model."""
    model_path = Path(model_path)
    stem = model_path.name[: -len(".ort.onnx")] if model_path.name.endswith(".ort.onnx") else model_path.stem
    return model_path.with_name(f"{stem}.b{OPENVINO_BATCH}.openvino")


def _cpu() -> dict:
    from stages.common.machine import cpu_model, isa_flags

    return {"model": cpu_model(), "isa_flags": isa_flags()}


def _median_rate(runner, ids: np.ndarray, seconds: float) -> float:
    times = []
    until = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < until:
        started = time.perf_counter()
        runner.infer({"input": ids})
        times.append(time.perf_counter() - started)
    return len(ids) / float(np.median(times))


def probe(runners: Dict[str, object], ids: np.ndarray, *, rounds: int = PROBE_ROUNDS,
          seconds: float = PROBE_SECONDS) -> Dict[str, float]:
    """Sentences/s of each runner on ``ids``: warm, then alternating rounds (a slow patch of the machine
    lands on both), the median of the rounds' medians."""
    for runner in runners.values():
        for _ in range(2):
            runner.infer({"input": ids})
    rates: Dict[str, List[float]] = {name: [] for name in runners}
    names = list(runners)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            rates[name].append(_median_rate(runners[name], ids, seconds))
    return {name: round(float(np.median(values)), 3) for name, values in rates.items()}


def build(onnx_path, ort_model, final_path, *, choice: str, precision: str, threads=None, progress_step=None) -> dict:
    """The manifest's ``engines`` and ``engine_choice`` for an offline model, writing the batch-1
    OpenVINO model beside ``final_path`` where it serves (and removing a stale one where it does not).
    ``ort_model``: the saved ONNX Runtime model to time against (the offline model, before its rename)."""
    from stages.backends.runners import OrtRunner
    from stages.common.atomic import remove_orphans, temporary
    from stages.common.hashing import sha256_file

    import onnxruntime as ort

    if choice not in CHOICES:
        raise StageError(f"CPU_ENGINE={choice!r} is not one of {', '.join(CHOICES)}")
    blob = openvino_path(final_path)
    remove_orphans(blob)
    ort_engine = {"runtime": ONNXRUNTIME, "version": ort.__version__, "path": str(final_path)}
    decided = {"asked": choice}

    def onnxruntime_only(reason: str) -> dict:
        if blob.exists():
            blob.unlink()  # a stale one would not be used, and must not look current
        return {"engines": [dict(ort_engine, batches="all")], "engine_choice": dict(decided, chosen=ONNXRUNTIME,
                                                                                     reason=reason)}

    if choice == ONNXRUNTIME:
        return onnxruntime_only("CPU_ENGINE=onnxruntime")
    if precision != "fp32":
        return onnxruntime_only(f"{precision}: ONNX Runtime's int8 kernels were faster at every batch")
    from stages.backends.openvino import loader
    from stages.backends.openvino.runner import OpenVinoRunner

    if not loader.available():
        if choice == OPENVINO:
            loader.require()  # its one-line error: how to install it
        return onnxruntime_only("OpenVINO is not installed in this Python")
    ort_runner = OrtRunner.load(ort_model, threads=threads, optimize=False)
    word_len = ort_runner.word_len
    if word_len is None:
        raise StageError(f"{onnx_path}: word_len axis is not static; export with a fixed WORD_LEN")
    shape = [OPENVINO_BATCH, word_len, ort_runner.input_shape[2]]
    tmp = temporary(blob)
    try:
        loader.export_compiled(onnx_path, tmp, shape=shape, threads=threads)
        reason = "CPU_ENGINE=openvino"
        if choice == "auto":
            from stages.graph.export import example_ids

            ov_runner = OpenVinoRunner.imported(tmp, threads=threads)
            rates = probe({ONNXRUNTIME: ort_runner, OPENVINO: ov_runner}, example_ids(OPENVINO_BATCH, word_len))
            del ov_runner
            decided.update(batch=OPENVINO_BATCH, rounds=PROBE_ROUNDS, sentences_per_s=rates,
                           threads=threads or "all cores", cpu=_cpu()["model"])
            if rates[OPENVINO] <= rates[ONNXRUNTIME]:
                return onnxruntime_only(f"batch {OPENVINO_BATCH}: ONNX Runtime {rates[ONNXRUNTIME]} sentences/s, "
                                        f"OpenVINO {rates[OPENVINO]}")
            reason = f"batch {OPENVINO_BATCH}: OpenVINO {rates[OPENVINO]} sentences/s, ONNX Runtime {rates[ONNXRUNTIME]}"
        os.replace(tmp, blob)
    finally:
        del ort_runner
        if tmp.exists():
            tmp.unlink()
    ov_engine = {"runtime": OPENVINO, "version": loader.version(), "path": str(blob), "batches": [OPENVINO_BATCH],
                 "input_shape": shape, "inference_precision": "f32", "size": blob.stat().st_size,
                 "sha256": sha256_file(blob), "cpu": _cpu()}
    return {"engines": [ov_engine, dict(ort_engine, batches="others")],
            "engine_choice": dict(decided, chosen=OPENVINO, reason=reason)}


class ByBatchRunner:
    """An offline model whose batch sizes are served by different runtimes (the manifest's ``engines``).

    It holds one runtime's model at a time: a call at a batch size served by the other frees the one
    held and loads the other (seconds; perf's warm-up takes it, untimed), so memory holds one copy of
    the weights, not two."""

    def __init__(self, routes: Dict[int, tuple], default: tuple, input_shape, name: str, first_batch: int = 1):
        """``routes``: batch size -> (runtime, loader); ``default``: (runtime, loader) for the others."""
        self.routes, self.default, self.name = routes, default, name
        self.input_shape = list(input_shape)
        self.held: Optional[str] = None
        self.current = None
        self.runner_for(first_batch)

    def runtime_for(self, batch: int) -> str:
        return self.routes.get(batch, self.default)[0]

    def runner_for(self, batch: int):
        runtime, load = self.routes.get(batch, self.default)
        if runtime != self.held:
            self.current = None
            gc.collect()
            from stages.common.memory import give_back_memory

            give_back_memory()
            self.current, self.held = load(), runtime
        return self.current

    @property
    def static_batch(self) -> Optional[int]:
        first = self.input_shape[0]
        return first if isinstance(first, int) else None

    @property
    def word_len(self) -> Optional[int]:
        second = self.input_shape[1]
        return second if isinstance(second, int) else None

    def infer(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        return self.runner_for(len(inputs["input"])).infer(inputs)


def _checked_openvino(engine: dict, manifest_path: Path) -> Path:
    """The batch-1 OpenVINO model of a manifest, refused with one line where this host cannot use it."""
    from stages.backends.openvino import loader

    blob = manifest_path.with_name(Path(engine["path"]).name)  # beside the model, wherever it was mounted
    fix = "rebuild it here with make om (or CPU_ENGINE=onnxruntime)"
    if not loader.available():
        raise StageError(f"{manifest_path}: batch 1 runs on OpenVINO, which is not installed in this Python; {fix}")
    if loader.version() != engine["version"]:
        raise StageError(f"{blob}: compiled by OpenVINO {engine['version']}, this Python has {loader.version()}; {fix}")
    here = _cpu()
    if set(engine["cpu"]["isa_flags"]) != set(here["isa_flags"]):
        raise StageError(f"{blob}: compiled on a CPU with other ISA extensions ({engine['cpu']['model']}: "
                         f"{' '.join(engine['cpu']['isa_flags'])}; here: {' '.join(here['isa_flags'])}); {fix}")
    if not blob.is_file() or blob.stat().st_size != engine["size"]:
        raise StageError(f"{blob}: missing or not the file its manifest {manifest_path} describes; {fix}")
    return blob


def load_offline(path, *, threads=None, name: str = "onnxruntime", first_batch: int = 1, **ort_options):
    """A runner for a cpu offline model: ONNX Runtime's, or a ``ByBatchRunner`` where its manifest
    gives batch 1 to OpenVINO. ``ort_options`` go to ``OrtRunner.load``."""
    import json

    from stages.backends.runners import OrtRunner

    path = Path(path)
    manifest_path = Path(f"{path}.json")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    load_ort: Callable = lambda: OrtRunner.load(path, threads=threads, optimize=False, name=name,  # noqa: E731
                                                **ort_options)
    openvino = [e for e in manifest.get("engines", []) if e.get("runtime") == OPENVINO]
    if not openvino:
        return load_ort()
    from stages.backends.openvino.runner import OpenVinoRunner

    blob = _checked_openvino(openvino[0], manifest_path)
    load_openvino = lambda: OpenVinoRunner.imported(blob, threads=threads, name=name)  # noqa: E731
    routes = {batch: (OPENVINO, load_openvino) for batch in openvino[0]["batches"]}
    return ByBatchRunner(routes, (ONNXRUNTIME, load_ort), manifest["input_shape"], name, first_batch=first_batch)


def runtime_of(runner, batch: int) -> str:
    """The runtime that serves ``batch`` in ``runner`` (a ``load_offline`` runner)."""
    return runner.runtime_for(batch) if isinstance(runner, ByBatchRunner) else ONNXRUNTIME
