"""Which CPU this is: figures move with it, so every speed figure names it.

x86 kernels lists its ISA extensions on /proc/cpuinfo's ``flags`` line, aarch64
on its ``Features`` line; both are read into the kernel's own names (``cpu_flags``)
and shown by the names in ``FLAG_NAMES``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

# The ISA features that decide which kernels the runtimes can use, per /proc/cpuinfo line,
# kernel name -> the name perf shows.
X86_FLAGS = {"fma": "FMA", "avx2": "AVX2", "avx512f": "AVX-512", "avx512bw": "AVX512-BW",
             "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI", "avx512_bf16": "AVX512-BF16",
             "amx_tile": "AMX", "amx_int8": "AMX-INT8", "amx_bf16": "AMX-BF16"}
ARM_FEATURES = {"asimd": "NEON", "asimddp": "NEON-DOTPROD", "i8mm": "I8MM", "bf16": "BF16", "sve": "SVE",
                "sve2": "SVE2"}
FLAG_NAMES = {**X86_FLAGS, **ARM_FEATURES}
ISA_FLAGS = tuple(FLAG_NAMES)


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _fields(text: str, key: str) -> list:
    """The values of every ``key : value`` line (the first processor's comes first)."""
    return [line.split(":", 1)[1].strip() for line in text.splitlines()
            if ":" in line and line.split(":", 1)[0].strip() == key]


def cpu_model(text: Optional[str] = None) -> str:
    """x86's ``model name``; aarch64 kernels often print none, only the implementer and part codes."""
    text = _cpuinfo() if text is None else text
    found = _fields(text, "model name")
    if found and found[0]:
        return found[0]
    implementer, part = _fields(text, "CPU implementer"), _fields(text, "CPU part")
    if implementer and part:
        return f"aarch64 CPU (implementer {implementer[0]}, part {part[0]})"
    return "unknown"


def isa_flags(text: Optional[str] = None) -> list:
    """The features in ``FLAG_NAMES`` this CPU has, by the kernel's names (x86 ``flags``, aarch64 ``Features``)."""
    text = _cpuinfo() if text is None else text
    for key, known in (("flags", X86_FLAGS), ("Features", ARM_FEATURES)):
        found = _fields(text, key)
        if found:
            present = set(found[0].split())
            return [flag for flag in known if flag in present]
    return []


def flag_names(flags) -> list:
    return [FLAG_NAMES.get(flag, flag) for flag in flags]


def isa_summary(flags) -> dict:
    """The feature classes that pick a kernel: whether this CPU has each."""
    has = set(flags)
    return {"avx2": "avx2" in has, "avx512": "avx512f" in has, "vnni": bool(has & {"avx512_vnni", "avx_vnni"}),
            "amx": "amx_tile" in has, "bf16": bool(has & {"avx512_bf16", "amx_bf16", "bf16"}),
            "dotprod": "asimddp" in has, "i8mm": "i8mm" in has, "sve": "sve" in has}


def ort_kernel(compute: str, flags, op: str = "") -> str:
    """The MLAS kernel ONNX Runtime's CPU provider picks for ``compute`` on a CPU with ``flags``: derived
    from the flags by MLAS's dispatch order (best first), not read from the session, which does not say.

    ``op`` is the int8 operator: ``MatMulNBits`` (8-bit blocks, int8 compute) or anything else for the
    dynamically quantized MatMul's u8 x s8 GEMM."""
    has = set(flags)
    if compute == "int8" and op == "MatMulNBits":
        paths = (("avx512_vnni", "AVX512-VNNI"), ("avx512f", "AVX-512"), ("avx_vnni", "AVX-VNNI"),
                 ("avx2", "AVX2"), ("i8mm", "I8MM"), ("asimddp", "NEON-DOTPROD"))
        return f"MLAS SQNBitGemm 8-bit blocks, int8 compute, {_first(paths, has, 'scalar')}"
    if compute == "int8":
        # Without VNNI, AVX2 sums u8 x s8 pairs in int16 with saturation (why the weights use 7 bits).
        paths = (("amx_int8", "AMX-INT8"), ("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI"),
                 ("avx512bw", "AVX-512 u8s8"), ("avx2", "AVX2 u8s8, int16 pair sums"), ("i8mm", "I8MM (smmla)"),
                 ("asimddp", "NEON-DOTPROD (sdot)"), ("asimd", "NEON"))
        return f"MLAS QGEMM u8s8, {_first(paths, has, 'SSE')}"
    paths = (("avx512f", "AVX-512F"), ("fma", "AVX2 FMA3"), ("avx2", "AVX2"), ("asimd", "NEON"))
    return f"MLAS SGEMM, {_first(paths, has, 'SSE')}"


def _first(paths, has: set, fallback: str) -> str:
    return next((name for flag, name in paths if flag in has), fallback)
