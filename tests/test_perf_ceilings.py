"""make perf's roofline per arithmetic: which CPU features there are (x86 and aarch64 /proc/cpuinfo),
which kernel ONNX Runtime's MLAS picks from them, which kernel OpenVINO really compiled (its runtime
graph, real OpenVINO), the bf16 ceiling's null and reason where there is no bf16 path, and that every
perf row names the ceiling it was judged against. Fast: no full-size model, no make."""
from __future__ import annotations

import numpy as np
import pytest

from stages.common.machine import cpu_model, flag_names, isa_flags, isa_summary, ort_kernel

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse sse2 avx fma avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""

# An Ampere Altra / Graviton-like aarch64 kernel: no "model name", features on a "Features" line.
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp \
sve i8mm bf16
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd40
CPU revision\t: 1

processor\t: 1
Features\t: fp asimd
"""


def test_x86_flags_and_model():
    flags = isa_flags(X86_CPUINFO)
    assert flags == ["fma", "avx2", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8",
                     "amx_bf16"]
    assert cpu_model(X86_CPUINFO) == "Intel(R) Xeon(R) Platinum 8480+"
    assert isa_summary(flags) == {"avx2": True, "avx512": True, "vnni": True, "amx": True, "bf16": True,
                                  "dotprod": False, "i8mm": False, "sve": False}


def test_aarch64_features_line():
    flags = isa_flags(ARM_CPUINFO)
    assert flags == ["asimd", "asimddp", "i8mm", "bf16", "sve"]  # the first processor's line
    assert flag_names(flags) == ["NEON", "NEON-DOTPROD", "I8MM", "BF16", "SVE"]
    assert cpu_model(ARM_CPUINFO) == "aarch64 CPU (implementer 0x41, part 0xd40)"
    summary = isa_summary(flags)
    assert summary["bf16"] and summary["dotprod"] and summary["i8mm"] and summary["sve"]
    assert not (summary["avx2"] or summary["vnni"] or summary["amx"])


def test_no_cpuinfo():
    assert isa_flags("") == [] and cpu_model("") == "unknown"


@pytest.mark.parametrize("flags, fp32, int8, nbits", [
    (["fma", "avx2", "avx512f", "avx512bw", "avx512_vnni", "amx_tile", "amx_int8"], "AVX-512F", "AMX-INT8",
     "AVX512-VNNI"),
    (["fma", "avx2", "avx512f", "avx512bw", "avx512_vnni"], "AVX-512F", "AVX512-VNNI", "AVX512-VNNI"),
    (["fma", "avx2", "avx_vnni"], "AVX2 FMA3", "AVX-VNNI", "AVX-VNNI"),
    (["fma", "avx2"], "AVX2 FMA3", "AVX2 u8s8, int16 pair sums", "AVX2"),
    (["asimd", "asimddp", "i8mm"], "NEON", "I8MM (smmla)", "I8MM"),
    ([], "SSE", "SSE", "scalar"),
])
def test_onnxruntime_kernel_named_from_flags(flags, fp32, int8, nbits):
    assert ort_kernel("fp32", flags) == f"MLAS SGEMM, {fp32}"
    assert ort_kernel("int8", flags) == f"MLAS QGEMM u8s8, {int8}"
    assert ort_kernel("int8", flags, "MatMulNBits") == f"MLAS SQNBitGemm 8-bit blocks, int8 compute, {nbits}"


def test_bf16_ceiling_is_null_with_reason_without_bf16():
    from stages.reports.perf import bf16_gemm_rate

    flags = isa_flags()
    if isa_summary(flags)["bf16"]:
        pytest.skip("this CPU has a bf16 path")
    ceiling = bf16_gemm_rate(2, flags)
    assert ceiling["gop_per_s"] is None and "no bf16 path on this CPU" in ceiling["reason"]
    assert "INFERENCE_PRECISION_HINT=bf16" in ceiling["measured_with"]


def _matmul_onnx(tmp_path, rows=8, k=64, n=32):
    import onnx

    from stages.graph.quantize import single_matmul_model

    path = tmp_path / "matmul.onnx"
    onnx.save(single_matmul_model(np.ones((k, n), dtype=np.float32), rows=rows), str(path))
    return path


def test_openvino_kernel_read_from_the_runtime_graph(tmp_path):
    ov = pytest.importorskip("openvino")
    from stages.reports.perf import openvino_kernel

    compiled = ov.Core().compile_model(str(_matmul_onnx(tmp_path)), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1})
    kernel = openvino_kernel(compiled)
    (op,) = kernel["ops"]  # the MatMul, as OpenVINO's CPU plugin runs it; Input/Const/Transpose left out
    assert op["layer"] in ("FullyConnected", "MatMul") and op["precision"] == "f32" and op["count"] == 1
    assert op["primitive"] and not op["primitive"].startswith("unknown")
    assert kernel["name"] == f"{op['layer']} {op['primitive']} x1" and "runtime graph" in kernel["source"]


def test_bf16_asked_but_compiled_in_f32_is_null_with_reason():
    """A CPU said to have bf16 where OpenVINO really has no bf16 kernel: the compiled MatMul runs in f32,
    which the runtime graph shows, so no bf16 rate is claimed."""
    pytest.importorskip("openvino")
    from stages.reports.perf import bf16_gemm_rate

    if isa_summary(isa_flags())["bf16"]:
        pytest.skip("this CPU has a bf16 path: OpenVINO would compile bf16")
    ceiling = bf16_gemm_rate(1, ["avx2", "avx512_bf16"], m=8, k=64, n=32)
    assert ceiling["gop_per_s"] is None and "compiled the bf16 MatMul in f32" in ceiling["reason"]
    assert ceiling["kernel"].endswith("x1") and "runtime graph" in ceiling["kernel_source"]


def _machine(bf16_rate=None):
    from stages.reports.perf import _ceiling

    return {"copy_gb_per_s": 10.0, "gemm_gflop_per_s": 100.0, "int8_gemm_gop_per_s": 400.0,
            "ceilings": {"fp32": _ceiling(100.0, "torch"), "int8": _ceiling(400.0, "ort", "MLAS", "derived"),
                         "bf16": _ceiling(bf16_rate, "openvino", reason="no bf16 path on this CPU")}}


@pytest.mark.parametrize("bf16_rate", [None, 300.0])
def test_every_row_names_its_ceiling(bf16_rate):
    from stages.elmo.elmo_options import ElmoOptions
    from stages.reports.perf import Variant, add_ratios_and_roofline
    from tests.conftest import TINY_OPTIONS

    variants = [Variant("base", "baseline", None, "fp32", 4), Variant("q", "variant", None, "int8", 1),
                Variant("ov", "peer", None, "bf16", 2, compute="bf16")]
    results = [{"variant": v.name, "kind": v.kind, "batch": 1, "sentences_per_s": 50.0} for v in variants]
    add_ratios_and_roofline(results, variants, ElmoOptions.from_dict(TINY_OPTIONS), 8, _machine(bf16_rate))
    roof = {r["variant"]: r["roofline"] for r in results}
    assert (roof["base"]["ceiling"], roof["base"]["ceiling_gop_per_s"]) == ("fp32", 100.0)
    assert (roof["q"]["ceiling"], roof["q"]["ceiling_gop_per_s"]) == ("int8", 400.0)
    if bf16_rate:
        assert (roof["ov"]["ceiling"], roof["ov"]["ceiling_gop_per_s"], roof["ov"]["ceiling_note"]) == \
            ("bf16", 300.0, None)
    else:  # no bf16 rate here: judged against fp32, and the row says why
        assert roof["ov"]["ceiling"] == "fp32" and "no bf16 path" in roof["ov"]["ceiling_note"]
    assert all(r["roofline"]["fraction_of_floor"] > 0 and r["kernel"] is None for r in results)


def test_machine_probes_run_in_a_process_of_their_own(monkeypatch):
    """perf measures the machine in a spawned process, so the probes' memory (PyTorch) is never
    part of perf's own peak: a probe broken in this process does not reach the measurement."""
    from stages.reports import perf

    def not_here(*_args, **_kwargs):
        raise AssertionError("the machine was measured in perf's own process")

    monkeypatch.setattr(perf, "fp32_gemm_rate", not_here)
    machine = perf.measure_machine_apart(1)
    assert machine["gemm_gflop_per_s"] > 0 and machine["threads"] == 1
    assert machine["cpu"] == perf.cpu_model() and machine["isa"] == isa_summary(isa_flags())
    assert set(machine["ceilings"]) == {"fp32", "int8", "bf16"}


def test_a_dead_pytorch_worker_is_one_line_not_a_hang(tmp_path):
    """The PyTorch eager worker failing (here: no model files; on a host, killed for memory) ends perf
    with one line instead of leaving it waiting forever for an answer."""
    from stages.common.errors import StageError
    from stages.reports.perf import WorkerVariant

    with pytest.raises(StageError, match="PyTorch eager worker died .* PERF_TORCH=0"):
        WorkerVariant("PyTorch eager", "pytorch", tmp_path / "options.json", tmp_path / "weights.hdf5", 1, [1])
