"""OpenVINO loaders: the simplified ONNX or a saved IR -> a compiled model.

Precision settings a peer is compiled with:

* ``default``: OpenVINO's own choice on this CPU (bf16 where the CPU has AMX or
  AVX512-BF16, f32 elsewhere);
* ``f32``: ``INFERENCE_PRECISION_HINT=f32``, every activation in float32.

``compress_int8`` is NNCF's weight compression (``nncf.compress_weights``,
INT8_ASYM per channel: int8 weights, activations as the precision setting
says), saved as an IR once by ``make`` (``openvino-ir``) so ``make perf``
does not recompress on every run.

``export_compiled`` / ``import_compiled``: a model compiled for one static shape,
exported (OpenVINO's ``export_model``) as a file, the way atc writes an ``.om``:
the cpu target's offline model carries one for each batch size OpenVINO ran
faster when it was built (``stages/backends/engines.py``). The file is only good for
the OpenVINO version and the CPU's ISA that compiled it; the manifest records both.
"""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import StageError

SETTINGS = ("default", "f32")
MISSING = ("{what} is not installed in this Python (import {module}: {why}): install the pinned requirements "
           "(.venv/bin/pip install -r requirements.txt), or leave the peers out with PERF_PEERS=none")


def require(what: str = "openvino"):
    """The ``openvino`` (or ``nncf``) module, or one StageError line saying how to get it."""
    try:
        if what == "nncf":
            import nncf

            return nncf
        import openvino

        return openvino
    except ImportError as exc:  # also the broken-install cases (a missing shared library)
        name = "NNCF" if what == "nncf" else "OpenVINO"
        raise StageError(MISSING.format(what=name, module=what, why=exc)) from None


def available() -> bool:
    try:
        require()
        return True
    except StageError:
        return False


def device_default_precision() -> str:
    """What ``default`` resolves to on this CPU (``f32``, ``bf16``, ``f16``), without compiling anything."""
    return _type_name(require().Core().get_property("CPU", "INFERENCE_PRECISION_HINT"))


def _type_name(value) -> str:
    text = str(value)
    for long, short in (("bfloat16", "bf16"), ("float32", "f32"), ("float16", "f16")):
        if long in text:
            return short
    return text


def read_model(path):
    """The simplified ONNX or an IR as an ``ov.Model``, its weights in FullyConnected's layout (layout.py)."""
    from stages.backends.openvino.layout import weights_out_in

    ov = require()
    path = Path(path)
    if not path.is_file():
        raise StageError(f"{path}: not found; run make simplify (ONNX) or make perf (the peers' IRs) first")
    try:
        model = ov.Core().read_model(str(path))
    except Exception as exc:  # OpenVINO raises its own untyped errors
        raise StageError(f"{path}: OpenVINO cannot read it ({str(exc).splitlines()[0]})") from None
    weights_out_in(model)
    return model


def weights_file(path):
    """The file OpenVINO maps ``path``'s weights from: an IR's ``.bin`` (None for an ONNX, read into memory)."""
    path = Path(path)
    return path.with_suffix(".bin") if path.suffix == ".xml" else None


def compile_file(path, *, shape=None, setting: str = "default", threads=None):
    """``path`` (ONNX or IR) compiled for the CPU, reshaped to the static ``shape`` where given.

    An IR's weights file stays mapped but its pages leave this process once compiled: the CPU plugin
    packed the weights into its own layout and does not read the file again (full size, float32:
    885 MB resident before, 528 MB after, the same outputs bit for bit)."""
    from stages.common.memory import drop_file_pages

    model = read_model(path)
    if shape is not None:
        model.reshape({model.input(0).get_any_name(): list(shape)})
    compiled = compile_model(model, setting=setting, threads=threads)
    del model
    if weights_file(path) is not None:
        drop_file_pages(weights_file(path))
    return compiled


def compile_model(model, *, setting: str = "default", threads=None):
    """A CPU compiled model of ``model`` (an ``ov.Model`` or a path) with ``setting`` (``SETTINGS``)."""
    ov = require()
    if setting not in SETTINGS:
        raise StageError(f"OpenVINO precision setting {setting!r} is not one of {', '.join(SETTINGS)}")
    if not isinstance(model, ov.Model):
        model = read_model(model)
    config = {"PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if setting == "f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    try:
        return ov.Core().compile_model(model, "CPU", config)
    except Exception as exc:
        raise StageError(f"OpenVINO cannot compile the model for the CPU ({str(exc).splitlines()[0]})") from None


def inference_precision(compiled) -> str:
    """The precision the compiled model really computes in (``f32``, ``bf16``, ...)."""
    return _type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))


def compress_int8(onnx_path):
    """NNCF int8 weight compression of the simplified ONNX: an ``ov.Model`` and a description."""
    nncf = require("nncf")
    model = read_model(onnx_path)
    import logging

    logging.getLogger("nncf").setLevel(logging.WARNING)  # a table per call otherwise
    compressed = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    return compressed, "NNCF compress_weights INT8_ASYM (int8 weights per output channel, asymmetric)"


def version() -> str:
    return require().__version__.split("-")[0]


def export_compiled(model, out_path, *, shape, setting: str = "f32", threads=None) -> str:
    """``model`` (an ``ov.Model``, reshaped in place, or a path) compiled with ``setting`` for the static
    ``shape`` and exported to ``out_path``; returns the precision it computes in (``f32``, ``bf16``)."""
    ov = require()
    if not isinstance(model, ov.Model):
        model = read_model(model)
    model.reshape({model.input(0).get_any_name(): list(shape)})
    compiled = compile_model(model, setting=setting, threads=threads)
    with open(out_path, "wb") as out:
        out.write(compiled.export_model().getbuffer())
    return inference_precision(compiled)


def import_compiled(path, *, threads=None, precision: str = "f32"):
    """An exported compiled model back on the CPU, computing in ``precision`` as it was compiled to:
    ``(compiled, mapping)``; keep ``mapping`` as long as ``compiled``. The file is mapped, not read: a
    read copy of the weights (0.37 GB at full size) would sit beside the compiled model's own while it
    loads."""
    import mmap

    import numpy as np

    ov = require()
    path = Path(path)
    if not path.is_file():
        raise StageError(f"{path}: not found; the offline model's manifest names it: rebuild with make om")
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    with open(path, "rb") as handle:
        # A private (copy-on-write) map: OpenVINO's Tensor wants writable memory; nothing writes to it.
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    try:
        stream = ov.Tensor(np.frombuffer(mapping, dtype=np.uint8), shared_memory=True)
        compiled = ov.Core().import_model(stream, "CPU", config)
        # Read once, into the plugin's own layout: its pages leave this process (a page read again
        # faults back in from the file; nothing writes to them, so none holds a change to lose).
        mapping.madvise(mmap.MADV_DONTNEED)
        return compiled, mapping
    except Exception as exc:
        raise StageError(f"{path}: OpenVINO {version()} cannot import it ({str(exc).splitlines()[0]}); "
                         f"rebuild it with make om") from None
