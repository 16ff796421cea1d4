"""The OpenVINO runner: ``infer({"input": ids}) -> {"output": ...}``, like OrtRunner.

OpenVINO runs this graph far faster with static shapes: on the dynamic-batch
ONNX its CPU plugin re-derives every node's shapes on every call (measured on
the tiny test model, 2 threads: 35 ms a call dynamic, 21 ms with the batch
bounded to 1..32, 8 ms static). So by default the runner compiles a static-shape
model for the batch it is given and keeps only that one: a new batch size
recompiles it (seconds, on the first call with that shape, which perf's warm-up
takes, untimed) and frees the old one (and hands its pages back), so memory holds one compiled model.
``static=False`` keeps one dynamic-shape model instead. ``imported`` runs an
exported compiled model (``loader.export_compiled``): one shape, no recompiling.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np

from stages.backends.openvino import loader
from stages.backends.runners import check_input_shape
from stages.common.errors import StageError
from stages.common.memory import give_back_memory

Arrays = Dict[str, np.ndarray]


class OpenVinoRunner:
    """An OpenVINO CPU model of the simplified ONNX or an IR, and one infer request."""

    def __init__(self, path, *, setting: str = "default", threads: Optional[int] = None, static: bool = True,
                 name: str = "openvino"):
        self.path, self.setting, self.threads, self.static, self.name = Path(path), setting, threads, static, name
        self.imported_from = None
        model = loader.read_model(self.path)
        self.input_shape = [d.get_length() if d.is_static else None for d in model.input(0).get_partial_shape()]
        self.compiled = self.request = self.shape = None
        if static:
            del model  # re-read per shape: holding it would keep a second copy of the weights
            self._compile([1 if d is None else d for d in self.input_shape])
        else:
            self.compiled = loader.compile_model(model, setting=setting, threads=threads)
            self.request = self.compiled.create_infer_request()

    @classmethod
    def load(cls, path, **kwargs) -> "OpenVinoRunner":
        """``path``: the simplified ONNX or an IR (``.xml``) such as the NNCF-compressed one."""
        return cls(path, **kwargs)

    @classmethod
    def imported(cls, path, *, threads: Optional[int] = None, precision: str = "f32",
                 name: str = "openvino") -> "OpenVinoRunner":
        """An exported compiled model (computing in ``precision``, as compiled): it serves its one static
        shape and refuses others."""
        runner = cls.__new__(cls)
        runner.path, runner.setting, runner.threads, runner.static, runner.name = Path(path), precision, threads, True, name
        runner.imported_from = Path(path)  # one shape, no recompiling: release() keeps it
        runner.compiled, runner._mapping = loader.import_compiled(path, threads=threads, precision=precision)
        runner.input_shape = [int(d) for d in runner.compiled.input(0).get_shape()]
        runner.shape = tuple(runner.input_shape)
        runner.request = runner.compiled.create_infer_request()
        return runner

    def _compile(self, shape) -> None:
        self.compiled = self.request = None  # free the old one before building the next
        self.compiled = loader.compile_file(self.path, shape=shape, setting=self.setting, threads=self.threads)
        self.request = self.compiled.create_infer_request()
        self.shape = tuple(shape)
        # The old compiled model and the graph read for this one are freed, but glibc keeps their
        # pages: over perf's batch sweep that held about 60 MB more per peer.
        give_back_memory()

    def release(self) -> None:
        """Free the model compiled for the last shape (a static runner from a model file; the next call
        compiles again): what perf does before it moves every model to the next batch size, so that
        none still holds the last one while another compiles."""
        if self.static and self.compiled is not None and not self.imported_from:
            self.compiled = self.request = self.shape = None
            give_back_memory()

    @property
    def inference_precision(self) -> str:
        return loader.inference_precision(self.compiled)

    @property
    def shapes(self) -> str:
        return "static, compiled per batch size" if self.static else "dynamic batch"

    def infer(self, inputs: Arrays) -> Arrays:
        ids = np.ascontiguousarray(inputs["input"], dtype=np.int32)
        check_input_shape(self.name, self.input_shape, ids)
        if self.static and ids.shape != self.shape:
            self._compile(ids.shape)
        self.request.infer({"input": ids})
        # The request reuses its output buffer: copy before the next call overwrites it.
        return {"output": np.array(self.request.get_output_tensor(0).data, copy=True)}
