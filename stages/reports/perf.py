"""``make perf``: sentences/s and latency percentiles over a batch sweep.

In one run, alternating round by round so drift on a shared machine hits all
alike: the target's offline model, the baseline (a plain float32 ONNX Runtime
session on the simplified ONNX), PyTorch eager and the *peers*: other CPU
runtimes on the same simplified ONNX (OpenVINO with its defaults, with f32
forced, and with NNCF int8 weights), each judged here against ONNX Runtime
float32 by the same gate as ``make accuracy``. Warm-up calls are never
timed; inputs are real sentences from the data stage. Ratios to the baseline
are the figures to trust; absolute numbers drift between runs.

Writes ``perf.json`` (schema ``elmo-perf/1``, docs/formats.md), ``perf.md``
and ``perf.png``.
"""
from __future__ import annotations

import importlib.util
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from stages.backends.engines import runtime_of
from stages.common.atomic import write_json, write_text
from stages.common.memory import peak_rss_mb, rss_mb
from stages.common.machine import cpu_model, flag_names, isa_flags, isa_summary, ort_kernel
from stages.common.errors import StageError
from stages.common.records import read_record
from stages.common.timing import round_order, timed_slot

SCHEMA = "elmo-perf/1"
PUBLISHED = [
    {"name": "Ascend 310P3 (seed guide)", "batch": 1, "sentences_per_s": 41.78,
     "label": "published, other hardware"},
    {"name": "NVIDIA T4 (seed guide)", "batch": 1, "sentences_per_s": 26.74,
     "label": "published, other hardware"},
]


def batch_inputs(ids: np.ndarray, batch: int) -> np.ndarray:
    """``batch`` real sentences, cycling through the data set if it is small."""
    take = np.arange(batch) % len(ids)
    return np.ascontiguousarray(ids[take])


def measure_machine_apart(threads: int) -> dict:
    """``measure_machine`` in a process of its own, before any model is loaded: its probes (PyTorch's
    GEMM, the int8 and bf16 MatMuls) then run on a quiet machine, and their memory (PyTorch alone,
    0.2 GB) never sits on top of the models' in perf's peak."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure_machine, threads).result()


def measure_machine(threads: int) -> dict:
    """This machine's copy bandwidth and compute ceilings (float32, int8, bf16), the roofline's ceilings,
    and which CPU it is (figures move with it)."""
    src = np.ones(64 * 2**20 // 4, dtype=np.float32)  # 64 MB: well past the L3
    dst = np.empty_like(src)
    copies = []
    for _ in range(7):
        started = time.perf_counter()
        np.copyto(dst, src)
        copies.append(time.perf_counter() - started)
    bandwidth = 2 * src.nbytes / np.median(copies)  # read + write
    gemm, gemm_by = fp32_gemm_rate(threads)
    flags = isa_flags()
    ceilings = compute_ceilings(threads, flags, gemm, gemm_by)
    return {"copy_gb_per_s": bandwidth / 1e9, "gemm_gflop_per_s": gemm,
            "int8_gemm_gop_per_s": ceilings["int8"]["gop_per_s"], "threads": threads, "gemm_measured_with": gemm_by,
            "cpu": cpu_model(), "cpu_arch": platform.machine(), "cpu_flags": flags, "isa": isa_summary(flags),
            "ceilings": ceilings}


def fp32_gemm_rate(threads: int, size: int = 2048) -> tuple:
    """(GFLOP/s of a float32 ``size``-cubed GEMM, what ran it: torch, or numpy's BLAS)."""
    try:
        import torch

        torch.set_num_threads(threads)
        a, b = torch.randn(size, size), torch.randn(size, size)
        gemm_by = "torch"
    except ImportError:  # the NPU runtime image has no torch; numpy's BLAS stands in
        rng = np.random.default_rng(0)
        a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
        gemm_by = "numpy"
    a @ b
    gemms = []
    for _ in range(5):
        started = time.perf_counter()
        a @ b
        gemms.append(time.perf_counter() - started)
    return 2 * size**3 / np.median(gemms) / 1e9, gemm_by


def _ceiling(rate, measured_with: str, kernel=None, kernel_source: str = "not inspected", reason=None) -> dict:
    return {"gop_per_s": rate, "measured_with": measured_with, "kernel": kernel, "kernel_source": kernel_source,
            "reason": None if rate else reason}


def compute_ceilings(threads: int, flags: list, fp32_rate: float, fp32_by: str) -> dict:
    """Per arithmetic a model may compute in, the rate this CPU reached with the kernel of the runtime
    that computes in it: a float32 ceiling would put int8 or bf16 models "above" the roofline."""
    int8 = int8_gemm_rate(threads)
    return {
        "fp32": _ceiling(fp32_rate, f"{fp32_by} float32 GEMM, 2048 x 2048 x 2048"),
        "int8": _ceiling(int8, "ONNX Runtime dynamic int8 MatMul 512 x 2048 x 2048, the int8 model's batched "
                         "kernel", ort_kernel("int8", flags), "derived from the ISA flags",
                         "onnx is not installed here"),
        "bf16": bf16_gemm_rate(threads, flags),
    }


def int8_gemm_rate(threads: int, m: int = 512, k: int = 2048, n: int = 2048) -> Optional[float]:
    """Giga-ops/s of ONNX Runtime's dynamic int8 MatMul (the int8 model's kernel) here,
    or None where onnx is not installed (the NPU runtime image).

    The int8 variants' compute ceiling: int8 runs several times the float32
    rate here, so a float32 ceiling would put them "above" the roofline."""
    import tempfile

    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        return None
    from stages.graph.quantize import INPUT, dynamic_int8, single_matmul_model

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "matmul.onnx"
        onnx.save(single_matmul_model(rng.standard_normal((k, n), dtype=np.float32), rows=m), str(src))
        quantized = dynamic_int8(src)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(quantized.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a = rng.standard_normal((m, k), dtype=np.float32)
    return 2 * m * k * n / _median_seconds(lambda: session.run(None, {INPUT: a})) / 1e9


def _median_seconds(call: Callable[[], object], runs: int = 5) -> float:
    """Median wall time of ``call`` over ``runs`` calls after one untimed warm-up."""
    call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def bf16_gemm_rate(threads: int, flags: list, m: int = 512, k: int = 2048, n: int = 2048) -> dict:
    """The bf16 ceiling: OpenVINO (the runtime that computes in bf16 here) on one MatMul compiled with
    ``INFERENCE_PRECISION_HINT=bf16``. A rate only where the compiled graph really runs in bf16 (OpenVINO
    quietly falls back to f32 on CPUs without it); else None and the reason."""
    import tempfile

    measured_with = f"OpenVINO MatMul, {m} x {k} x {n}, INFERENCE_PRECISION_HINT=bf16"
    if not isa_summary(flags)["bf16"]:
        have = ", ".join(flag_names(flags)) or "none of the listed extensions"
        return _ceiling(None, measured_with, reason=f"no bf16 path on this CPU: it has {have}, "
                        f"but neither AMX-BF16 nor AVX512-BF16 (on aarch64: BF16)")
    try:
        import onnx
        import openvino as ov
    except ImportError as exc:
        return _ceiling(None, measured_with, reason=f"OpenVINO is not installed here ({exc})")
    from stages.graph.quantize import INPUT, single_matmul_model

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "matmul.onnx"
        onnx.save(single_matmul_model(rng.standard_normal((k, n), dtype=np.float32), rows=m), str(src))
        try:
            compiled = ov.Core().compile_model(str(src), "CPU", {"INFERENCE_PRECISION_HINT": "bf16",
                                                                "INFERENCE_NUM_THREADS": int(threads),
                                                                "PERFORMANCE_HINT": "LATENCY"})
        except Exception as exc:  # OpenVINO raises its own untyped errors
            return _ceiling(None, measured_with, reason=f"OpenVINO cannot compile the bf16 MatMul here "
                            f"({str(exc).splitlines()[0]})")
    kernel = openvino_kernel(compiled)
    precisions = {op["precision"] for op in kernel["ops"]}
    if precisions != {"bf16"}:
        return _ceiling(None, measured_with, kernel["name"], kernel["source"],
                        f"OpenVINO compiled the bf16 MatMul in {', '.join(sorted(precisions))} on this CPU")
    request = compiled.create_infer_request()
    a = rng.standard_normal((m, k), dtype=np.float32)
    seconds = _median_seconds(lambda: request.infer({INPUT: a}))
    return _ceiling(2 * m * k * n / seconds / 1e9, measured_with, kernel["name"], kernel["source"])


# The runtime graph's layer types that carry a model's arithmetic (the rest move data).
OPENVINO_COMPUTE_LAYERS = ("FullyConnected", "MatMul", "Convolution", "GroupConvolution", "Deconvolution",
                           "RNNSeq", "RNNCell")


def openvino_kernel(compiled) -> dict:
    """Which kernels an OpenVINO compiled model really runs its arithmetic with, read from its runtime
    graph: each op's ``layerType``, ``primitiveType`` (e.g. ``brgemm_avx2_f32``, ``jit_avx512_amx_bf16``)
    and ``runtimePrecision``, counted."""
    counts: Dict[tuple, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str)
        if layer in OPENVINO_COMPUTE_LAYERS:
            key = (layer, info["primitiveType"].astype(str), info["runtimePrecision"].astype(str))
            counts[key] = counts.get(key, 0) + 1
    ops = [{"layer": layer, "primitive": primitive, "precision": precision, "count": count}
           for (layer, primitive, precision), count in sorted(counts.items(), key=lambda item: -item[1])]
    name = "; ".join(f"{op['layer']} {op['primitive']} x{op['count']}" for op in ops) or "no compute layers"
    return {"runtime": "openvino", "name": name, "ops": ops, "source": "read from the compiled model's runtime graph"}


def model_cost(options, word_len: int, batch: int, weight_bytes: int) -> dict:
    """FLOPs per sentence and weight bytes moved per sentence at ``batch``.

    The recurrence re-reads the hidden and projection matrices at every step of
    every layer and direction; a batch shares each read, which is why batching
    and int8 weights are the levers on a CPU. The floor counts each weight read
    once per call from memory (one direction's int8 matrices, 10 MB, then stay
    in the 32 MB L3 between steps, as the profile shows); the traffic with no
    reuse between steps is reported beside it.
    """
    e, p, c = options.char_embed_dim, options.projection_dim, options.cell_dim
    f = options.n_filters
    steps = word_len + 2
    cnn = sum(2 * e * w * n * (50 - w + 1) for w, n in options.filters) * steps
    highway = options.n_highway * 2 * f * 2 * f * steps
    proj = 2 * f * p * steps
    # Each direction runs all but its last step (whose output is a sentence mark's, dropped: model.py),
    # and the first starts from a zero state and skips the hidden MatMul.
    run = steps - 1
    per_direction_layer = steps * 2 * p * 4 * c + run * 2 * c * p + (run - 1) * 2 * p * 4 * c
    flops = cnn + highway + proj + 2 * options.n_layers * per_direction_layer
    recurrent = 2 * options.n_layers * ((run - 1) * p * 4 * c + run * c * p)
    once = 2 * options.n_layers * p * 4 * c + options.n_highway * 2 * f * f + f * p
    recurrent_once = 2 * options.n_layers * (p * 4 * c + c * p)
    return {"flops_per_sentence": float(flops),
            "weight_bytes_per_sentence": float((recurrent_once + once) * weight_bytes / batch),
            "weight_bytes_without_reuse_per_sentence": float((recurrent + once) * weight_bytes / batch)}


class Variant:
    """One thing to time: a runner in this process."""

    def __init__(self, name: str, kind: str, runner, precision: str, weight_bytes: int, *, model=None,
                 batches=None, rss_mb=float("nan"), compute=None):
        self.name, self.kind, self.runner = name, kind, runner
        self.precision, self.weight_bytes, self.model = precision, weight_bytes, model
        self.batches = batches  # None: every batch size
        self.rss_mb = rss_mb
        # The arithmetic its kernels run in (the roofline's compute ceiling): int8 weights
        # decompressed to float32 (OpenVINO + NNCF, f32 activations) compute in float32.
        self.compute = compute or ("int8" if precision == "int8" else "fp32")
        self.peer = None  # peers: how it was made, and its verdict (judge_peers)

    def _infer(self, ids):
        return self.runner.infer({"input": ids})

    def warm(self, inputs: np.ndarray, count: int) -> None:
        for _ in range(count):
            self._infer(inputs)

    def slot(self, inputs: np.ndarray, seconds: float, min_count: int) -> list:
        return timed_slot(self._infer, inputs, seconds, min_count)

    def release(self) -> None:
        """Free what the runner compiled or loaded for the last batch size, where it can load it again."""
        release = getattr(self.runner, "release", None)
        if release is not None:
            release()

    def close(self) -> None:
        pass

    def kernel(self, batch: int, flags: list) -> dict:
        """The kernel its arithmetic ran with at ``batch``: an OpenVINO peer's read from the model compiled
        for that batch (call after warming at it); ONNX Runtime's derived from the ISA flags."""
        if self.peer:
            return openvino_kernel(self.runner.compiled)
        if self.model and runtime_of(self.runner, batch) == "openvino":  # served by the offline model's OpenVINO form
            return openvino_kernel(self.runner.runner_for(batch).compiled)
        form = (_manifest_of(self.model).get("weights_form") or "") if self.model else ""
        # The int8 model runs MatMulNBits at batch 1 and the dynamically quantized MatMul above (quantize.py).
        op = "MatMulNBits" if batch == 1 and "MatMulNBits" in form else ""
        return {"runtime": "onnxruntime", "name": ort_kernel(self.compute, flags, op),
                "source": "derived from the ISA flags"}


def _torch_worker(conn, options, weights, threads) -> None:
    from stages.backends.runners import TorchRunner

    runner = TorchRunner.load(options, weights, threads=threads)
    conn.send(("ready", peak_rss_mb()))
    infer = lambda ids: runner.infer({"input": ids})  # noqa: E731
    while True:
        command, inputs, seconds, count = conn.recv()
        if command == "stop":
            conn.send(("peak", peak_rss_mb()))
            return
        timings = timed_slot(infer, inputs, seconds if command == "slot" else 0.0, count)
        conn.send(("timings", timings))


class WorkerVariant(Variant):
    """PyTorch eager in its own process: it is timed in the same alternating
    rounds, but its memory does not count against the ONNX models' peak."""

    def __init__(self, name, kind, options, weights, threads, batches):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_torch_worker, args=(child, options, weights, threads), daemon=True)
        self.process.start()
        _, rss = self._receive()
        super().__init__(name, kind, None, "fp32", 4, batches=batches, rss_mb=rss)
        self.peak_rss_mb = rss

    def _receive(self):
        """The worker's answer; one line, not a wait forever, if it died (killed for memory, a crash)."""
        while not self.conn.poll(1.0):
            if not self.process.is_alive():
                raise StageError(f"perf: the PyTorch eager worker died (exit code {self.process.exitcode}) "
                                 f"before answering; its error is above, or PERF_TORCH=0 leaves PyTorch out")
        return self.conn.recv()

    def warm(self, inputs, count):
        self.conn.send(("warm", inputs, 0.0, count))
        self._receive()

    def slot(self, inputs, seconds, min_count):
        self.conn.send(("slot", inputs, seconds, min_count))
        return self._receive()[1]

    def close(self):
        self.conn.send(("stop", None, 0.0, 0))
        self.peak_rss_mb = self._receive()[1]
        self.process.join(timeout=30)

    def kernel(self, batch, flags):
        return {"runtime": "torch", "name": "PyTorch eager's own (oneDNN or MKL)", "source": "not inspected"}


def _manifest_of(model) -> dict:
    manifest_path = Path(str(model) + ".json")
    return json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}


def _precision_of(model) -> str:
    return _manifest_of(model).get("precision", "fp32")


def _load_variants(args, threads: int) -> List[Variant]:
    from stages.backends.engines import load_offline
    from stages.backends.runners import OrtRunner
    from stages.sources.weights import load_source

    variants = []

    # One arena for all of them: they run one at a time, and each arena of its own kept its largest batch.
    def session(path):
        return lambda: OrtRunner.load(path, threads=threads, shared_arena=True)

    def offline(path):  # an offline model: the runtimes its manifest names (engines.py)
        return lambda: load_offline(path, threads=threads, first_batch=min(args.batch), shared_arena=True)

    def add(name, kind, load, precision, model=None, batches=None):
        before = rss_mb()
        runner = load()
        variants.append(Variant(name, kind, runner, precision, 1 if precision == "int8" else 4, model=model,
                                batches=batches, rss_mb=rss_mb() - before))

    add("baseline: ORT fp32, simplified ONNX", "baseline",
        session(args.onnx), "fp32", model=args.onnx)
    if args.seed_onnx:
        # The seed guide's graph (allennlp export -> onnxsim), static batch 1.
        add("seed pipeline: allennlp export, ORT fp32", "seed",
            session(args.seed_onnx), "fp32", model=args.seed_onnx, batches=[1])
    if args.target == "cpu":
        precision = _precision_of(args.model)
        add(f"target: cpu offline model ({precision})", "target",
            offline(args.model), precision, model=args.model)
    for extra in args.variant_model or []:
        if Path(extra).resolve() == Path(args.model).resolve():
            continue
        precision = _precision_of(extra)
        add(f"variant: cpu offline model ({precision})", "variant",
            offline(extra), precision, model=extra)
    if not args.no_torch and importlib.util.find_spec("torch") is None:
        print("perf: PyTorch is not installed here; PyTorch eager is not timed", file=sys.stderr)
    elif not args.no_torch:
        source = load_source(args.weights_source)
        eager_batches = [b for b in args.batch if b <= args.torch_max_batch]
        variants.append(WorkerVariant("PyTorch eager", "pytorch", source["options"], source["weights"], threads,
                                      eager_batches))
    return variants


# The peers: (source, OpenVINO precision setting, name). "onnx" is the simplified ONNX, "nncf" the
# IR with NNCF int8 weights that make builds once (openvino-ir).
OPENVINO_PEERS = (
    ("onnx", "f32", "peer: OpenVINO, simplified ONNX, f32 forced"),
    ("onnx", "default", "peer: OpenVINO, simplified ONNX, its default"),
    ("nncf", "f32", "peer: OpenVINO + NNCF int8 weights, f32 activations"),
    ("nncf", "default", "peer: OpenVINO + NNCF int8 weights, its default"),
)
EXACT, REDUCED = "exact fp32", "reduced precision"


def peer_precision(source: str, computes: str) -> tuple:
    """(precision label, weight bytes, compute) of a peer computing in ``computes`` (f32, bf16, f16)."""
    if source == "nncf":
        return ("int8" if computes == "f32" else f"int8+{computes}"), 1, ("fp32" if computes == "f32" else computes)
    return ("fp32", 4, "fp32") if computes == "f32" else (computes, 2, computes)


def precision_class(precision: str) -> str:
    return EXACT if precision == "fp32" else REDUCED


def resolve_peers(asked: str) -> List[str]:
    """``--peers`` -> the peer runtimes to load: ``auto`` is openvino where it imports, else none (said
    on stderr); ``openvino`` asked for where it does not import is one StageError line."""
    from stages.backends.openvino import loader

    if asked == "none":
        return []
    if asked == "openvino":
        loader.require()
        return ["openvino"]
    if loader.available():
        return ["openvino"]
    print("perf: OpenVINO is not installed here; no peers are timed (PERF_PEERS=none to say so)", file=sys.stderr)
    return []


def _load_peers(args, threads: int, notes: List[str]) -> List[Variant]:
    """The OpenVINO peers, each compiled once; a setting that resolves to one already loaded (its
    default is f32 on a CPU without bf16) is timed once, and ``notes`` says so."""
    from stages.backends.openvino import loader
    from stages.backends.openvino.runner import OpenVinoRunner

    if args.peers != "openvino":  # run() resolved --peers once already
        return []
    # The simplified ONNX as OpenVINO's own IR where make built it: the same graph and weights, mapped
    # from its file rather than read into memory, so they leave the process once compiled (compress.py).
    sources = {"onnx": args.openvino_fp32 or args.onnx, "nncf": args.openvino_int8}
    if not args.openvino_int8:
        notes.append("OpenVINO + NNCF int8 weights not timed: no --openvino-int8 IR given (make perf builds it)")
    default = loader.device_default_precision()
    peers, loaded = [], {}
    for source, setting, name in OPENVINO_PEERS:
        path = sources[source]
        if not path:
            continue
        computes = "f32" if setting == "f32" else default
        if (source, computes) in loaded:
            notes.append(f"{name}: OpenVINO's default on this CPU is {default}, the same as "
                         f"{loaded[(source, computes)]!r}; timed once")
            continue
        label = f"{name} ({computes})" if setting == "default" else name
        before = rss_mb()
        runner = OpenVinoRunner.load(path, setting=setting, threads=threads, name=label)
        computes = runner.inference_precision  # what it really compiled to
        precision, weight_bytes, compute = peer_precision(source, computes)
        v = Variant(label, "peer", runner, precision, weight_bytes, model=path, rss_mb=rss_mb() - before,
                    compute=compute)
        v.peer = {"variant": label, "runtime": "openvino", "source": source, "model": str(path),
                  "setting": setting, "shapes": runner.shapes, "inference_precision": computes, "precision": precision,
                  "precision_class": precision_class(precision)}
        loaded[(source, computes)] = label
        peers.append(v)
    return peers


def judge_peers(peers: List[Variant], reference_runner, ids: np.ndarray, lengths: List[int], batches: List[int],
                gate: dict) -> None:
    """Each peer run over the data-stage inputs at each of ``batches`` and compared with ONNX Runtime
    float32 on the simplified ONNX (``reference_runner``), by make accuracy's gate: mean sentence
    cosine and min token cosine at or above the gate, padded positions exactly zero."""
    from stages.backends.runners import infer_all
    from stages.common.progress import step
    from stages.reports.accuracy import gate_checks, padding_max
    from stages.reports.metrics import compare, summarize

    if not peers:
        return
    with step(f"perf: reference outputs for the peers' verdicts (ONNX Runtime fp32, {len(ids)} sentences)"):
        reference = infer_all(reference_runner, ids, batch_size=max(batches))
    want = [reference[i, :n] for i, n in enumerate(lengths)]
    for v in peers:
        runs = []
        with step(f"perf: judging {v.name} at batch {', '.join(map(str, batches))}"):
            for batch in batches:
                outputs = infer_all(v.runner, ids, batch_size=batch)
                raw = compare([outputs[i, :n] for i, n in enumerate(lengths)], want)
                padding = padding_max(outputs, lengths)
                sentence, token = summarize(raw["sentence_cosine"]), summarize(raw["token_cosine"])
                checks = dict(gate_checks(sentence, token, gate), padding_exactly_zero=padding == 0.0)
                runs.append({"batch": batch, "sentence_cosine": sentence, "token_cosine": token,
                             "max_abs_error": raw["max_abs_error"], "mean_abs_error": raw["mean_abs_error"],
                             "padding_max_abs": padding, "checks": checks, "passed": all(checks.values())})
        passed = all(run["passed"] for run in runs)
        v.peer.update({"reference": "onnxruntime fp32, simplified ONNX", "gate": gate, "runs": runs,
                       "token_cosine_min": min(run["token_cosine"]["min"] for run in runs),
                       "sentence_cosine_mean_min": min(run["sentence_cosine"]["mean"] for run in runs),
                       "passed": passed, "accuracy_gate": "passed" if passed else "FAILED"})
        print(f"perf: {v.name}: token cosine min {v.peer['token_cosine_min']:.6f} vs ORT fp32 -> "
              f"{v.peer['accuracy_gate']}", file=sys.stderr)


class MemoryTrace:
    """This process's resident memory after each phase of the run (where perf's peak comes from)."""

    def __init__(self):
        self.points: List[dict] = []

    def __call__(self, after: str) -> None:
        now = rss_mb()
        # Linux updates the high-water mark lazily: it can lag the resident memory of this moment.
        self.points.append({"after": after, "rss_mb": round(now, 1), "peak_rss_mb": round(max(now, self.peak), 1)})

    @property
    def peak(self) -> float:
        return max([peak_rss_mb()] + [p["peak_rss_mb"] for p in self.points])


def run_sweep(variants: List[Variant], ids: np.ndarray, batches: List[int], *, seconds: float, warmup: int,
              rounds: int, min_iters: int, progress=True, trace=None) -> List[dict]:
    from tqdm import tqdm

    results = []
    flags = isa_flags()
    steps = sum(len([v for v in variants if v.batches is None or b in v.batches]) for b in batches) * rounds
    bar = tqdm(total=steps, desc="perf", disable=None if progress else True)
    for batch in batches:
        inputs = batch_inputs(ids, batch)
        active = [v for v in variants if v.batches is None or batch in v.batches]
        timings: Dict[str, List[float]] = {v.name: [] for v in active}
        # Every model lets go of the last batch size's form before any builds the next: a model compiling
        # then has beside it only those built already at this size (perf's peak is at the largest batch).
        for v in variants:
            v.release()
        for v in active:
            v.warm(inputs, warmup)
        kernels = {v.name: v.kernel(batch, flags) for v in active}  # after warming: a peer compiles per batch
        # Alternate in rounds: a slow patch of the machine lands on every variant, and no variant
        # always follows the same one.
        for round_ in range(rounds):
            for v in round_order(active, round_):
                timings[v.name] += v.slot(inputs, seconds / rounds, max(1, min_iters // rounds))
                bar.update(1)
        for v in active:
            ms = np.asarray(timings[v.name]) * 1000.0
            results.append({
                "variant": v.name,
                "kind": v.kind,
                "precision": v.precision,
                "batch": batch,
                "iterations": int(ms.size),
                "sentences_per_s": float(batch * 1000.0 / np.median(ms)),
                "latency_ms": {"p50": float(np.median(ms)), "p90": float(np.percentile(ms, 90)),
                               "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()),
                               "min": float(ms.min())},
                "kernel": kernels[v.name],
            })
        if trace:
            trace(f"batch {batch}")
    bar.close()
    return results


def add_ratios_and_roofline(results: List[dict], variants: List[Variant], options, word_len, machine) -> None:
    baseline = {r["batch"]: r["sentences_per_s"] for r in results if r["kind"] == "baseline"}
    base1 = baseline.get(min(baseline)) if baseline else None
    seed1 = next((r["sentences_per_s"] for r in results if r["kind"] == "seed" and r["batch"] == 1), None)
    by_name = {v.name: v for v in variants}
    for r in results:
        same = baseline.get(r["batch"])
        r["speedup_vs_baseline_same_batch"] = r["sentences_per_s"] / same if same else None
        r["speedup_vs_baseline_batch1"] = r["sentences_per_s"] / base1 if base1 else None
        r["speedup_vs_seed_batch1"] = r["sentences_per_s"] / seed1 if seed1 else None
        r.setdefault("kernel", None)  # NPU timings: no host kernel
        if r["variant"] not in by_name:  # timed by ais_bench on the NPU: the host roofline does not apply
            r["roofline"] = None
            continue
        cost = model_cost(options, word_len, r["batch"], by_name[r["variant"]].weight_bytes)
        ceiling = pick_ceiling(by_name[r["variant"]].compute, machine)
        floor_s = max(cost["weight_bytes_per_sentence"] / (machine["copy_gb_per_s"] * 1e9),
                      cost["flops_per_sentence"] / (ceiling["ceiling_gop_per_s"] * 1e9))
        r["roofline"] = {
            **cost,
            **ceiling,
            "floor_ms_per_sentence": floor_s * 1000.0,
            "measured_ms_per_sentence": 1000.0 / r["sentences_per_s"],
            "fraction_of_floor": floor_s * r["sentences_per_s"],
        }


def pick_ceiling(compute: str, machine: dict) -> dict:
    """The compute ceiling a model computing in ``compute`` is judged against: that arithmetic's measured
    rate, else float32's, with the reason (e.g. no bf16 path here)."""
    ceilings = machine.get("ceilings") or {}
    own = ceilings.get(compute) or {}
    if own.get("gop_per_s"):
        return {"ceiling": compute, "ceiling_gop_per_s": own["gop_per_s"], "ceiling_note": None}
    why = own.get("reason") or f"no {compute} ceiling is measured"
    note = None if compute == "fp32" else f"judged against fp32: {why}"
    return {"ceiling": "fp32", "ceiling_gop_per_s": machine["gemm_gflop_per_s"], "ceiling_note": note}


def add_gates(results: List[dict], variants: List[Variant], reports: List[str], target_model) -> None:
    """Each measured model's accuracy verdict, so a fast variant that fails the
    gate shows as failing next to its speed."""
    verdicts = {}
    for path in reports:
        report = read_record(path, missing="rerun make accuracy")
        verdicts[str(Path(report["model"]["path"]).resolve())] = "passed" if report["passed"] else "FAILED"
    models = {v.name: v.model for v in variants}
    peers = {v.name: v.peer for v in variants if v.peer}
    for r in results:
        if r["kind"] in ("baseline", "pytorch", "seed"):
            r["accuracy_gate"] = "reference"
            continue
        if r["variant"] in peers:  # judged in this run (judge_peers)
            r["accuracy_gate"] = peers[r["variant"]]["accuracy_gate"]
            continue
        model = models.get(r["variant"]) or target_model  # NPU timings belong to the target's .om
        r["accuracy_gate"] = verdicts.get(str(Path(model).resolve()), "not judged")


def locate_links(reports: List[str], report_dir) -> List[str]:
    """For each flavour that failed the gate, a line linking its ``make locate`` report (current only:
    not older than the verdict it explains), or the command that makes one."""
    lines = []
    for path in reports:
        path = Path(path)
        report = read_record(path, missing="rerun make accuracy")
        if report["passed"]:
            continue
        flavour = path.parent.name  # runs/<target>-<flavour>/accuracy.json, as make locate names its folder
        located = Path(report_dir) / "locate" / flavour / "locate.json"
        try:  # an unreadable or older locate report is no reason to lose the timings: offer the command
            current = located.is_file() and located.stat().st_mtime >= path.stat().st_mtime
            first = read_record(located, missing="rerun make locate").get("first_below_gate") if current else None
        except StageError:
            current = False
        if current:
            found = f"first below the gate: {first['label']}" if first else "every layer passes on its sample"
            lines.append(f"- {flavour} failed the accuracy gate; per-layer comparison "
                         f"([locate/{flavour}/locate.md](locate/{flavour}/locate.md)): {found}.")
        else:
            setting = report.get("precision")
            how = (f"PRECISION={setting}" if report["target"] == "cpu" else
                   f"TARGET=ascend{' PRECISION_MODE=' + setting if setting else ''}")
            lines.append(f"- {flavour} failed the accuracy gate; `make locate {how}` (same other settings) says "
                         f"which layer loses accuracy.")
    return lines


def summarize_models(results: List[dict], variants: List[Variant], largest: int = 32) -> List[dict]:
    """Per judged model: batch 1 and its best batch <= ``largest``, as ratios to the
    baseline and the seed's graph at batch 1 (the figures the speed targets use)."""
    forms = {v.name: _manifest_of(v.model).get("weights_form") for v in variants if v.kind in ("target", "variant")}
    forms.update({v.name: _peer_form(v) for v in variants if v.peer})
    served = {v.name: engines_text(_manifest_of(v.model)) for v in variants if v.kind in ("target", "variant")}
    summary = []
    for name in dict.fromkeys(r["variant"] for r in results if r["kind"] in ("target", "variant", "peer")):
        rows = [r for r in results if r["variant"] == name]
        one = next((r for r in rows if r["batch"] == 1), None)
        best = max((r for r in rows if r["batch"] <= largest), key=lambda r: r["sentences_per_s"], default=None)
        if best is None:
            continue
        summary.append({
            "variant": name,
            "kind": best["kind"],
            "precision": best["precision"],
            "weights_form": forms.get(name),
            "engines": served.get(name),
            "accuracy_gate": best["accuracy_gate"],
            "batch1_sentences_per_s": one["sentences_per_s"] if one else None,
            "batch1_vs_baseline": one["speedup_vs_baseline_same_batch"] if one else None,
            "batch1_vs_seed": one["speedup_vs_seed_batch1"] if one else None,
            "best_batch": best["batch"],
            "best_sentences_per_s": best["sentences_per_s"],
            "best_vs_baseline_batch1": best["speedup_vs_baseline_batch1"],
            "best_vs_seed_batch1": best["speedup_vs_seed_batch1"],
            "ceiling": (best["roofline"] or {}).get("ceiling"),
            "batch1_fraction_of_floor": _floor_fraction(one),
            "best_fraction_of_floor": _floor_fraction(best),
            "kernels": _kernels_by_batch(rows),
        })
    return summary


def engines_text(manifest: dict) -> Optional[str]:
    """Which runtime served which batch sizes of an offline model, and why (its manifest's ``engines``)."""
    entries = manifest.get("engines")
    if not entries:
        return None
    parts = []
    for e in entries:
        batches = e["batches"]
        where = {"all": "every batch", "others": "other batches"}.get(batches) if isinstance(batches, str) else \
            "batch " + ", ".join(str(b) for b in batches)
        parts.append(f"{where}: {e['runtime']} {e['version']}")
    choice = manifest.get("engine_choice") or {}
    return "; ".join(parts) + (f" (make om, CPU_ENGINE={choice['asked']}: {choice['reason']})" if choice else "")


def _floor_fraction(row) -> Optional[float]:
    return (row.get("roofline") or {}).get("fraction_of_floor") if row else None


def _kernels_by_batch(rows: List[dict]) -> List[dict]:
    """The distinct kernels a model ran with over the sweep, each with the batch sizes it ran at."""
    found: Dict[str, dict] = {}
    for r in rows:
        if r.get("kernel"):
            entry = found.setdefault(r["kernel"]["name"], {"name": r["kernel"]["name"], "source": r["kernel"]["source"],
                                                           "batches": []})
            entry["batches"].append(r["batch"])
    return list(found.values())


def _peer_form(v: Variant) -> str:
    weights = ("NNCF int8 weights" if v.peer["source"] == "nncf" else "float32 weights")
    return f"OpenVINO, {weights}, computes in {v.peer['inference_precision']}"


def compare_peers(results: List[dict], largest: int = 32) -> List[dict]:
    """Per precision class (exact fp32, reduced precision) and point (batch 1, best batch <= ``largest``):
    the project's fastest gate-passing model against the fastest gate-passing peer, and their ratio."""
    rows = [r for r in results if r["kind"] in ("target", "variant", "peer") and r["batch"] <= largest]
    table = []
    for klass in (EXACT, REDUCED):
        for point in ("batch 1", f"best batch <= {largest}"):
            entry = {"class": klass, "point": point}
            for side, kinds in (("project", ("target", "variant")), ("peer", ("peer",))):
                mine = [r for r in rows if r["kind"] in kinds and precision_class(r["precision"]) == klass
                        and r.get("accuracy_gate") == "passed" and (point != "batch 1" or r["batch"] == 1)]
                best = max(mine, key=lambda r: r["sentences_per_s"], default=None)
                entry[side] = best and {"variant": best["variant"], "precision": best["precision"],
                                        "batch": best["batch"], "sentences_per_s": best["sentences_per_s"]}
            both = entry["project"] and entry["peer"]
            entry["project_vs_peer"] = (entry["project"]["sentences_per_s"] / entry["peer"]["sentences_per_s"]
                                        if both else None)
            table.append(entry)
    return table


def runtime_versions() -> dict:
    """The installed versions of the runtimes a figure depends on (None where absent), read from the
    package metadata: nothing is imported for it."""
    from importlib import metadata

    found = {}
    for name in ("onnxruntime", "openvino", "nncf", "torch"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _ratio(value) -> str:
    return f"{value:.2f}x" if value else "n/a"


PERF_COLUMNS = """Columns: *sentences/s* is batch x 1000 / median ms per call; *x baseline (same batch)* divides it by
the project's simplified ONNX under plain ONNX Runtime at the same batch, *x baseline batch 1* and *x seed
batch 1* by that graph's and the seed guide's graph's batch-1 rate (n/a where the reference was not timed);
*p50/p90/p99 ms* are per call; *iters* counts timed calls; *ceiling* is the compute ceiling the row is judged
against: the measured rate of the arithmetic the model runs in (fp32, int8, bf16), fp32 where that one has
no rate here (the line under the table says why); *floor fraction* is the roofline floor (weights
read once / copy bandwidth, or FLOPs / that ceiling, measured in this run) divided
by the measured time per sentence: 1.0 means at the floor, above 1 would be faster than the floor, which
happens when the weights stay in cache between calls (the floor counts one read from memory per call);
*accuracy gate* is the variant's verdict through the same gate as make accuracy."""


def _ms(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _target_timing(args, results) -> str:
    if args.target != "ascend":
        return "wall time of session.run, same loop as the baseline"
    first = next((r for r in results if r["kind"] == "target"), {})
    tool = first.get("tool") or {}
    return (f"ais_bench pure-inference NPU compute time, --loop {args.loop}; warm-up {args.warmup} iterations, "
            f"excluded by: {first.get('warmup_method', 'n/a')}; tool: {' '.join(tool.get('launcher', []))} "
            f"({tool.get('release', 'release unknown')}, version {tool.get('version') or 'not printed'})")


def _fraction(value) -> str:
    return "n/a" if value is None else f"{value:.2g}"  # tiny models sit far below 0.01


def _kernel_text(kernel: dict) -> str:
    return f"{kernel['name']} (batch {', '.join(map(str, kernel['batches']))}; {kernel['source']})"


def _ceilings_line(machine: dict) -> str:
    """fp32, int8 and bf16 ceilings: the rate, what measured it and its kernel, or why there is none."""
    parts = []
    for name, entry in (machine.get("ceilings") or {}).items():
        if entry["gop_per_s"]:
            kernel = f"; kernel {entry['kernel']}, {entry['kernel_source']}" if entry.get("kernel") else ""
            parts.append(f"{name} {entry['gop_per_s']:.0f} G{'FLOP' if name != 'int8' else 'OP'}/s "
                         f"({entry['measured_with']}{kernel})")
        else:
            parts.append(f"{name} none ({entry['reason']})")
    return "; ".join(parts) or "not recorded"


def render_markdown(report: dict, failures: List[str] = ()) -> str:
    m = report["machine"]
    lines = [
        f"# Speed: {report['target']} target, WORD_LEN {report['word_len']}",
        "",
        f"- weights: {report['weights_label']}",
        f"- data: {report['data_label']}",
        f"- CPU: {m.get('cpu', 'unknown')} ({m.get('cpu_arch') or 'arch unknown'}; "
        f"{', '.join(flag_names(m.get('cpu_flags') or [])) or 'none of the listed ISA extensions'}); figures "
        f"compare only within this run",
        "- runtimes: " + ", ".join(f"{k} {v}" for k, v in (m.get("runtimes") or {}).items() if v),
        f"- threads: {m['threads']}; copy bandwidth {m['copy_gb_per_s']:.1f} GB/s, measured in this run; floor = "
        f"max(weights read once / copy bandwidth, FLOPs / the compute ceiling of the arithmetic the model runs in)",
        "- compute ceilings, measured in this run: " + _ceilings_line(m),
        f"- target timings: {report['target_timing']}",
        f"- peak RSS: {report['peak_rss_mb']['process']:.0f} MB for the ONNX Runtime variants"
        + (" and the peers" if report["peak_rss_mb"].get("peers") else "")
        + ", all loaded together; PyTorch eager runs in its own process"
        + (f" ({report['peak_rss_mb']['pytorch_worker']:.0f} MB)" if report["peak_rss_mb"]["pytorch_worker"] else ""),
        f"- budget: {report['budget']['seconds_per_point']} s per point in {report['budget']['rounds']} "
        f"alternating rounds after {report['budget']['warmup']} untimed warm-up calls",
        "",
        "| model | weights | gate | batch 1 sentences/s | x baseline | x seed | best batch <= 32 | sentences/s "
        "| x baseline b1 | x seed b1 | ceiling | floor fraction b1 | floor fraction best |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m_ in report["summary"]:
        one = m_["batch1_sentences_per_s"]
        lines.append(
            f"| {m_['variant']} | {m_['weights_form'] or m_['precision']} | {m_['accuracy_gate']} | "
            f"{f'{one:.1f}' if one else 'n/a'} | {_ratio(m_['batch1_vs_baseline'])} | {_ratio(m_['batch1_vs_seed'])} | "
            f"{m_['best_batch']} | {m_['best_sentences_per_s']:.1f} | {_ratio(m_['best_vs_baseline_batch1'])} | "
            f"{_ratio(m_['best_vs_seed_batch1'])} | {m_.get('ceiling') or 'n/a'} | "
            f"{_fraction(m_.get('batch1_fraction_of_floor'))} | {_fraction(m_.get('best_fraction_of_floor'))} |"
        )
    lines += ["", "Kernels each model ran with (ONNX Runtime's derived from the ISA flags, MLAS's dispatch order; "
              "OpenVINO's read from the compiled model's runtime graph):", ""]
    lines += [f"- {m_['variant']}: " + ("; ".join(_kernel_text(k) for k in m_.get("kernels") or []) or "n/a")
              for m_ in report["summary"]]
    served = [m_ for m_ in report["summary"] if m_.get("engines")]
    if served:
        lines += ["", "Runtimes serving each offline model (its manifest's engines):", ""]
        lines += [f"- {m_['variant']}: {m_['engines']}" for m_ in served]
    if report.get("peer_comparison"):
        lines += ["", "Against the peers (gate-passing models only; x peer = project / peer):", "",
                  "| precision class | point | project's best | sentences/s | best peer | sentences/s | x peer |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for c in report["peer_comparison"]:
            cells = [f"{side['variant']} @{side['batch']} | {side['sentences_per_s']:.1f}" if side
                     else "none passed | n/a" for side in (c["project"], c["peer"])]
            lines.append(f"| {c['class']} | {c['point']} | {cells[0]} | {cells[1]} | {_ratio(c['project_vs_peer'])} |")
        lines += ["", "Peers' verdicts (run here over the data-stage inputs, against ONNX Runtime fp32 on the "
                  "simplified ONNX, same gate as make accuracy):", ""]
        for peer in report["peers"]:
            runs = "; ".join(f"batch {r['batch']}: token cosine min {r['token_cosine']['min']:.6f}, sentence "
                             f"cosine mean {r['sentence_cosine']['mean']:.6f}, max abs {r['max_abs_error']:.2g}"
                             for r in peer.get("runs", []))
            lines.append(f"- {peer['variant']}: **{peer.get('accuracy_gate', 'not judged')}** ({runs})")
    for note in report.get("peer_notes") or []:
        lines.append(f"- {note}")
    if failures:
        lines += ["", *failures]
    lines += [
        "",
        "| variant | batch | sentences/s | x baseline (same batch) | x baseline batch 1 | x seed batch 1 | p50 ms "
        "| p90 ms | p99 ms | iters | ceiling | floor fraction | accuracy gate |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["results"]:
        lat = r["latency_ms"]
        roof = r["roofline"] or {}
        lines.append(
            f"| {r['variant']} | {r['batch']} | {r['sentences_per_s']:.2f} | "
            f"{_ratio(r['speedup_vs_baseline_same_batch'])} | {_ratio(r['speedup_vs_baseline_batch1'])} | "
            f"{_ratio(r['speedup_vs_seed_batch1'])} | {_ms(lat['p50'])} | {_ms(lat['p90'])} | {_ms(lat['p99'])} | "
            f"{r['iterations']} | {roof.get('ceiling') or 'n/a'} | {_fraction(roof.get('fraction_of_floor'))} | "
            f"{r['accuracy_gate']} |"
        )
    notes = sorted({(r["roofline"] or {}).get("ceiling_note") for r in report["results"]} - {None})
    lines += [f"- {note}" for note in notes]
    lines += ["", PERF_COLUMNS]
    lines += ["", "Model RSS per variant (MB, growth on load): " +
              ", ".join(f"{k}: {v:.0f}" for k, v in report["model_rss_mb"].items()), ""]
    if report.get("memory_trace"):
        phases = [f"{p['after']}: {p['rss_mb']:.0f} / {p['peak_rss_mb']:.0f}" for p in report["memory_trace"]]
        lines += ["Memory of the perf process (MB, resident / peak so far) after " + "; ".join(phases), ""]
    lines += ["Published figures (other hardware, batch 1, not measured here): " +
              "; ".join(f"{p['name']} {p['sentences_per_s']}" for p in report["published"]), ""]
    lines += ["![sentences per second](perf.png)", ""]
    return "\n".join(lines)


def plot(report: dict, dest) -> None:
    from stages.reports.plots import pyplot, save_png

    fig, ax = pyplot().subplots(figsize=(7, 4.6))
    names = []
    for r in report["results"]:
        if r["variant"] not in names:
            names.append(r["variant"])
    for name in names:
        rows = [r for r in report["results"] if r["variant"] == name]
        points = [(r["batch"], r["sentences_per_s"]) for r in rows]
        peer = rows[0]["kind"] == "peer"  # other runtimes: dashed, so the project's own lines stand out
        ax.plot([b for b, _ in points], [s for _, s in points], marker="s" if peer else "o",
                linestyle="--" if peer else "-", label=name)
    for p in report["published"]:
        # Measured at batch 1 on other hardware: a point there, not a line across every batch.
        ax.plot([1], [p["sentences_per_s"]], marker="*", markersize=9, linestyle="none", color="grey")
        ax.annotate(f"{p['name']} (published, batch 1)", (1, p["sentences_per_s"]), fontsize=7,
                    xytext=(6, -3), textcoords="offset points")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch")
    ax.set_ylabel("sentences/s")
    import textwrap

    title = (f"{report['target']} target, WORD_LEN {report['word_len']}; CPU {report['machine'].get('cpu', '?')}; "
             f"weights: {report['weights_label']}{' (SYNTHETIC)' if report.get('weights_synthetic') else ''}; "
             f"data: {report['data_label']}")
    ax.set_title(textwrap.fill(title, 95), fontsize=7)
    ax.legend(fontsize=7)
    save_png(fig, dest)


COMMAND = "perf"
COMMAND_HELP = dict(help="speed sweep: target vs baseline vs PyTorch eager")


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="the target's offline model")
    parser.add_argument("--variant-model", action="append",
                        help="another cpu offline model (e.g. the int8 one) to measure alongside the target")
    parser.add_argument("--accuracy-report", action="append",
                        help="accuracy.json of a model measured here: its gate verdict goes into the report")
    parser.add_argument("--onnx", required=True, help="simplified ONNX (the baseline)")
    parser.add_argument("--seed-onnx", default="",
                        help="the seed's graph (allennlp export + onnxsim, batch 1), timed as a second baseline")
    parser.add_argument("--data", required=True, help="data stage folder (real inputs)")
    parser.add_argument("--weights-source", required=True)
    parser.add_argument("--dataset-source", default="")
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed budget per (variant, batch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-iters", type=int, default=3)
    parser.add_argument("--loop", type=int, default=100, help="ascend: ais_bench --loop per batch size")
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--devices", default="0", help="ascend: NPU id(s); perf uses the first")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--peers", choices=("auto", "openvino", "none"), default="auto",
                        help="other runtimes timed as peers: auto (openvino where it is installed), openvino, none")
    parser.add_argument("--openvino-fp32", default="",
                        help="the simplified ONNX as an OpenVINO IR (make's openvino-ir) for the float peers; "
                             "without it they read the ONNX")
    parser.add_argument("--openvino-int8", default="",
                        help="the OpenVINO IR with NNCF int8 weights (make's openvino-ir) for the NNCF peers")
    parser.add_argument("--sentence-cos-min", type=float, default=0.99, help="the gate the peers are judged by")
    parser.add_argument("--token-cos-min", type=float, default=0.99, help="the gate the peers are judged by")
    parser.add_argument("--torch-max-batch", type=int, default=32)
    parser.add_argument("--report-dir", required=True)
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from stages.sources.data import bin_path, load_samples, read_bin
    from stages.elmo.elmo_options import load_options
    from stages.backends.runners import default_threads
    from stages.sources.weights import load_source

    if any(b < 1 for b in args.batch):
        raise StageError("BATCH sizes must be at least 1")
    threads = args.threads or default_threads()
    manifest, sentences = load_samples(args.data)
    word_len = manifest["word_len"]
    ids = np.concatenate([read_bin(bin_path(args.data, manifest, i), word_len) for i in range(len(sentences))])
    source = load_source(args.weights_source)
    dataset = json.loads(Path(args.dataset_source).read_text()) if args.dataset_source else {}
    peer_notes: List[str] = []
    machine = measure_machine_apart(threads)
    machine["runtimes"] = runtime_versions()
    # Resolved once, before minutes of loading: PERF_PEERS=openvino without OpenVINO is one line.
    args.peers = "openvino" if resolve_peers(args.peers) else "none"
    trace = MemoryTrace()
    variants = _load_variants(args, threads)
    onnx_peak = peak_rss_mb()
    trace("loading the ONNX Runtime variants")
    peers = _load_peers(args, threads, peer_notes)
    variants += peers
    trace("loading the peers")
    batches = sorted(set(args.batch))
    gate = {"sentence_cosine_mean_min": args.sentence_cos_min, "token_cosine_min": args.token_cos_min}
    baseline = next(v for v in variants if v.kind == "baseline")
    judge_peers(peers, baseline.runner, ids, [len(s) for s in sentences], sorted({1, max(batches)}), gate)
    if peers:
        trace("judging the peers")
    results = run_sweep(variants, ids, batches, seconds=args.seconds, warmup=args.warmup,
                        rounds=args.rounds, min_iters=args.min_iters, progress=not args.no_progress, trace=trace)
    if args.target == "ascend":
        from stages.backends.ascend.target import perf_entries

        results += perf_entries(args, batches)
    for v in variants:
        v.close()
    add_ratios_and_roofline(results, variants, load_options(source["options"]), word_len, machine)
    add_gates(results, variants, args.accuracy_report or [], args.model)
    process_peak = trace.peak  # the high-water mark only rises: it covers onnx_peak
    report = {
        "schema": SCHEMA,
        "target": args.target,
        "word_len": word_len,
        "model": str(args.model),
        "onnx": str(args.onnx),
        "weights_label": source["label"],
        "weights_synthetic": source["synthetic"],
        "data_label": dataset.get("label") or manifest.get("source_label"),
        # What a length-bucket summary weighs this bucket's rates by.
        "data": {"dir": str(args.data), "min_len": manifest.get("min_len", 1), "word_len": word_len,
                 "samples": len(sentences), "tokens": int(sum(len(s) for s in sentences))},
        "machine": machine,
        "target_timing": _target_timing(args, results),
        "budget": {"seconds_per_point": args.seconds, "rounds": args.rounds, "warmup": args.warmup,
                   "min_iters": args.min_iters},
        # The perf process: every in-process model (ONNX Runtime variants and peers) loaded together.
        "peak_rss_mb": {"process": process_peak,
                        "onnxruntime_variants": process_peak,  # the older name, kept for readers of it
                        "onnxruntime_before_peers": onnx_peak,
                        "peers": [v.name for v in peers],
                        "pytorch_worker": next((v.peak_rss_mb for v in variants if isinstance(v, WorkerVariant)),
                                               None)},
        "model_rss_mb": {v.name: v.rss_mb for v in variants},
        "memory_trace": trace.points,
        "results": results,
        "summary": summarize_models(results, variants),
        "peers": [v.peer for v in peers],
        "peer_notes": peer_notes,
        "peer_comparison": compare_peers(results) if peers else [],
        "published": PUBLISHED,
    }
    out = Path(args.report_dir)
    plot(report, out / "perf.png")
    write_text(out / "perf.md", render_markdown(report, locate_links(args.accuracy_report or [], out)))
    write_json(out / "perf.json", report)
    for r in results:
        print(f"perf {r['variant']:<40} batch {r['batch']:>3}: {r['sentences_per_s']:8.2f} sentences/s "
              f"(x{r['speedup_vs_baseline_same_batch']:.2f} vs baseline), p50 "
              f"{'%.1f ms' % r['latency_ms']['p50'] if r['latency_ms']['p50'] is not None else 'n/a'}",
              file=sys.stderr)
    return 0
