"""Which runtime serves each batch size of the cpu target's offline model.

ONNX Runtime serves every batch size from the saved offline model (``*.ort.onnx``)
unless the model also carries OpenVINO compiled models: one per batch size
OpenVINO serves (``*.b<N>.openvino``, each exported for its static shape, the way
atc writes an ``.om``). The manifest's ``engines`` says which runtime serves which
batch sizes, and ``engine_choice`` why.

Why per batch size, and measured on the host that compiles: the runtimes trade
places by CPU and batch. At batch 1 each LSTM step reads 40 MB of weights for one
vector; OpenVINO f32 ran it at 1.10x ONNX Runtime on an Intel Xeon (AVX-512), level
on an AMD EPYC with AVX2 only (0.96-1.04x over six ``make perf`` runs), where ONNX
Runtime was ahead at batch 32; on an AMD EPYC with AVX-512 OpenVINO led at every
batch (1.06-1.26x, one run). So ``auto`` times both at each batch size the model will
serve, alternating, and OpenVINO serves the sizes where it was faster. The int8
model does the same with OpenVINO + NNCF int8 weights: at batch 1 ONNX Runtime's
MatMulNBits GEMV ran 1.2-1.5x that on the AVX2 EPYC, 0.83-0.99x on the AVX-512 one.
"""
from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from stages.backends.runners import InputShape
from stages.common.errors import StageError
from stages.common.progress import step
from stages.common.timing import round_order, timed_slot

CHOICES = ("auto", "onnxruntime", "openvino")
ONNXRUNTIME, OPENVINO = "onnxruntime", "openvino"
# The OpenVINO form of each precision: (loader setting, weights). int8: NNCF's int8 weights (INT8_ASYM per
# channel) with OpenVINO's default activations (bf16 where the CPU has it, else f32, with its own dynamic
# int8 quantization of activations for the compressed MatMuls), judged by the same gate as ONNX Runtime's.
OPENVINO_FORMS = {"fp32": ("f32", "float32 weights"), "int8": ("default", "NNCF int8 weights")}
# Per runtime, batch size and round; at full size the probe over batches 1-32 takes about a minute.
PROBE_ROUNDS, PROBE_SECONDS = 6, 0.5


def openvino_path(model_path, batch: int) -> Path:
    """``x.ort.onnx`` -> ``x.b<batch>.openvino``: a compiled OpenVINO model beside the offline model."""
    model_path = Path(model_path)
    return model_path.with_name(f"{_stem(model_path)}.b{batch}.openvino")


def _stem(model_path: Path) -> str:
    return model_path.name[: -len(".ort.onnx")] if model_path.name.endswith(".ort.onnx") else model_path.stem


def openvino_files(model_path) -> List[Path]:
    model_path = Path(model_path)
    if not model_path.parent.is_dir():
        return []
    return sorted(model_path.parent.glob(f"{_stem(model_path)}.b*.openvino"))


def _cpu() -> dict:
    from stages.common.machine import cpu_model, isa_flags

    return {"model": cpu_model(), "isa_flags": isa_flags()}


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
        for name in round_order(names, round_):
            infer = runners[name].infer
            times = timed_slot(lambda batch: infer({"input": batch}), ids, seconds, 3)
            rates[name].append(len(ids) / float(np.median(times)))
    return {name: round(float(np.median(values)), 3) for name, values in rates.items()}


def build(onnx_path, ort_model, final_path, *, choice: str, precision: str, batches: Sequence[int] = (1,),
          threads=None, batched_onnx=None) -> dict:
    """The manifest's ``engines`` and ``engine_choice`` for an offline model that will serve ``batches``,
    writing an OpenVINO compiled model beside ``final_path`` for each batch size OpenVINO serves (and
    removing those of earlier builds). ``ort_model``: the saved ONNX Runtime model to time against (the
    offline model, before its rename). ``batched_onnx``: the graph OpenVINO compiles above batch 1, where
    it differs from ``onnx_path`` (stages/backends/compile.py)."""
    from stages.backends.runners import OrtRunner
    from stages.common.atomic import remove_orphans, temporary
    from stages.common.hashing import sha256_file
    from stages.graph.export import example_ids

    import onnxruntime as ort

    if choice not in CHOICES:
        raise StageError(f"CPU_ENGINE={choice!r} is not one of {', '.join(CHOICES)}")
    batches = sorted(set(int(b) for b in batches))
    # An earlier build's OpenVINO models go, and with them the record that names them: a build stopped
    # half way must not leave the old model's manifest routing a batch size to a new file of the same size.
    for old in [*openvino_files(final_path), Path(f"{final_path}.json")]:
        if old.exists():
            old.unlink()
    ort_engine = {"runtime": ONNXRUNTIME, "version": ort.__version__, "path": str(final_path)}
    decided = {"asked": choice}

    def onnxruntime_only(reason: str) -> dict:
        return {"engines": [dict(ort_engine, batches="all")], "engine_choice": dict(decided, chosen=ONNXRUNTIME,
                                                                                     reason=reason)}

    if choice == ONNXRUNTIME:
        return onnxruntime_only("CPU_ENGINE=onnxruntime")
    if precision not in OPENVINO_FORMS:
        return onnxruntime_only(f"{precision}: OpenVINO has no form of this model")
    from stages.backends.openvino import loader
    from stages.backends.openvino.runner import OpenVinoRunner

    needs = ("openvino", "nncf") if precision == "int8" else ("openvino",)
    for module in needs:
        try:
            loader.require(module)
        except StageError:
            if choice == OPENVINO:
                raise  # its one-line error: how to install it
            return onnxruntime_only(f"{'NNCF' if module == 'nncf' else 'OpenVINO'} is not installed in this Python")
    setting, form = OPENVINO_FORMS[precision]

    def openvino_model(path):
        if precision == "int8":
            with step("compile: NNCF compresses the weights to int8 for OpenVINO"):
                return loader.compress_int8(path)
        return loader.read_model(path), form

    source, source_path = None, None
    ort_runner = OrtRunner.load(ort_model, threads=threads, optimize=False)
    word_len = ort_runner.word_len
    if word_len is None:
        raise StageError(f"{onnx_path}: word_len axis is not static; export with a fixed WORD_LEN")
    served, rates, models, computes = [], {}, [], None
    try:
        for batch in batches:
            blob = openvino_path(final_path, batch)
            remove_orphans(blob)
            tmp = temporary(blob)
            try:
                wanted = onnx_path if batch == 1 or batched_onnx is None else batched_onnx
                if wanted != source_path:  # batches ascend: batch 1's model goes before the batched one loads
                    source = None
                    source, form = openvino_model(wanted)
                    source_path = wanted
                shape = [batch, word_len, ort_runner.input_shape[2]]
                computes = loader.export_compiled(source, tmp, shape=shape, setting=setting, threads=threads)
                if choice == "auto":
                    ov_runner = OpenVinoRunner.imported(tmp, threads=threads, precision=computes)
                    rates[batch] = probe({ONNXRUNTIME: ort_runner, OPENVINO: ov_runner}, example_ids(batch, word_len))
                    del ov_runner
                    if rates[batch][OPENVINO] <= rates[batch][ONNXRUNTIME]:
                        continue
                os.replace(tmp, blob)
            finally:
                if tmp.exists():
                    tmp.unlink()
            served.append(batch)
            models.append({"batch": batch, "path": str(blob), "input_shape": shape, "size": blob.stat().st_size,
                           "sha256": sha256_file(blob)})
    finally:
        del ort_runner, source
    if choice == "auto":
        decided.update(rounds=PROBE_ROUNDS, threads=threads or "all cores", cpu=_cpu()["model"],
                       sentences_per_s={str(b): r for b, r in rates.items()})
    reason = "CPU_ENGINE=openvino" if choice == OPENVINO else "the faster at each batch size in make om's probe"
    if not served:
        return onnxruntime_only(reason)
    ov_engine = {"runtime": OPENVINO, "version": loader.version(), "batches": served, "weights_form": form,
                 "setting": setting, "inference_precision": computes, "models": models, "cpu": _cpu()}
    rest = [dict(ort_engine, batches="others")]
    return {"engines": [ov_engine, *rest], "engine_choice": dict(decided, chosen=OPENVINO, reason=reason)}


def openvino_batches(served: dict) -> List[int]:
    """The batch sizes ``build``'s result gives to OpenVINO."""
    return [b for e in served["engines"] if e["runtime"] == OPENVINO for b in e["batches"]]


class ByBatchRunner(InputShape):
    """An offline model whose batch sizes are served by different models (the manifest's ``engines``):
    ONNX Runtime's, and OpenVINO's compiled one per batch size.

    It holds one model at a time: a call at a batch size another serves frees the one held and loads
    that one (ONNX Runtime's in seconds, an OpenVINO file in a fraction of one; perf's warm-up takes
    it, untimed), so memory holds one copy of the weights, not one per batch size."""

    def __init__(self, routes: Dict[int, tuple], default: tuple, input_shape, name: str, first_batch: int = 1):
        """``routes``: batch size -> (runtime, loader); ``default``: (runtime, loader) for the others."""
        self.routes, self.default, self.name = routes, default, name
        self.input_shape = list(input_shape)
        self.held: Optional[tuple] = None
        self.current = None
        self.runner_for(first_batch)

    def _route(self, batch: int) -> tuple:
        return (self.routes[batch][0], batch) if batch in self.routes else (self.default[0], None)

    def runtime_for(self, batch: int) -> str:
        return self._route(batch)[0]

    @property
    def held_runtime(self) -> Optional[str]:
        return self.held[0] if self.held else None

    def runner_for(self, batch: int):
        route = self._route(batch)
        if route != self.held:
            self._let_go()
            load = self.routes[batch][1] if batch in self.routes else self.default[1]
            self.current, self.held = load(), route
        return self.current

    def _let_go(self) -> None:
        from stages.common.memory import give_back_memory

        self.current = self.held = None
        gc.collect()
        give_back_memory()

    def release(self) -> None:
        """Free an OpenVINO model held (the next call loads the one its batch size needs); ONNX Runtime's
        serves every other batch size and stays."""
        if self.held is not None and self.held[0] == OPENVINO:
            self._let_go()

    def infer(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        return self.runner_for(len(inputs["input"])).infer(inputs)


def _checked_openvino(engine: dict, manifest_path: Path) -> Dict[int, Path]:
    """``{batch: file}`` of a manifest's OpenVINO models, refused with one line where this host cannot
    use them."""
    from stages.backends.openvino import loader

    fix = "rebuild it here with make om (or CPU_ENGINE=onnxruntime)"
    if not loader.available():
        raise StageError(f"{manifest_path}: OpenVINO serves batch {', '.join(map(str, engine['batches']))} and is "
                         f"not installed in this Python; {fix}")
    here, flags = loader.version(), _cpu()["isa_flags"]
    files = {}
    for model in engine["models"]:
        blob = manifest_path.with_name(Path(model["path"]).name)  # beside the model, wherever it was mounted
        if here != engine["version"]:
            raise StageError(f"{blob}: compiled by OpenVINO {engine['version']}, this Python has {here}; {fix}")
        if set(engine["cpu"]["isa_flags"]) != set(flags):
            raise StageError(f"{blob}: compiled on a CPU with other ISA extensions ({engine['cpu']['model']}: "
                             f"{' '.join(engine['cpu']['isa_flags'])}; here: {' '.join(flags)}); {fix}")
        if not blob.is_file() or blob.stat().st_size != model["size"]:
            raise StageError(f"{blob}: missing or not the file its manifest {manifest_path} describes; {fix}")
        files[int(model["batch"])] = blob
    return files


def load_offline(path, *, threads=None, name: str = "onnxruntime", first_batch: int = 1, **ort_options):
    """A runner for a cpu offline model: ONNX Runtime's, or a ``ByBatchRunner`` where its manifest
    gives batch sizes to OpenVINO. ``ort_options`` go to ``OrtRunner.load``."""
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

    computes = openvino[0].get("inference_precision") or "f32"

    def loader_of(blob):
        return lambda: OpenVinoRunner.imported(blob, threads=threads, precision=computes, name=name)

    routes = {batch: (OPENVINO, loader_of(blob)) for batch, blob in _checked_openvino(openvino[0], manifest_path).items()}
    return ByBatchRunner(routes, (ONNXRUNTIME, load_ort), manifest["input_shape"], name, first_batch=first_batch)


def runtime_of(runner, batch: int) -> str:
    """The runtime that serves ``batch`` in ``runner`` (a ``load_offline`` runner)."""
    return runner.runtime_for(batch) if isinstance(runner, ByBatchRunner) else ONNXRUNTIME
