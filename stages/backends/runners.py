"""The backend boundary, after NVIDIA Polygraphy: a *loader* builds or loads a
model for one backend; a *runner* has ``infer(inputs) -> outputs``.

Comparison and benchmarking code only ever holds runners. Inputs and outputs
are dicts of numpy arrays keyed by the graph's tensor names (``input`` int32
``[B, W, 50]`` -> ``output`` float32 ``[B, W, D]``).
"""
from __future__ import annotations

import os
from typing import Dict, Optional

import numpy as np

from stages.common.errors import StageError

# OrtRunner.load's dynamic_blocks: on this model 1 and 2 both helped at batch 1, 4 did not.
DYNAMIC_BLOCK_BASE = 2

Arrays = Dict[str, np.ndarray]


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def check_input_shape(name: str, model_shape, ids: np.ndarray) -> None:
    """One line naming the axis where ``ids`` does not fit a model's input shape (non-int dims are free)."""
    for axis, (want, got) in enumerate(zip(model_shape, ids.shape)):
        if isinstance(want, int) and want != got:
            raise StageError(f"{name}: input shape {list(ids.shape)} does not fit the model's {list(model_shape)}"
                             f" (axis {axis}); rebuild the model for this BATCH/WORD_LEN")


class TorchRunner:
    """PyTorch eager on the project's module."""

    def __init__(self, model, *, threads: Optional[int] = None, name: str = "pytorch-eager",
                 onednn: bool = False):
        """``onednn``: the weight products on oneDNN's kernels (``ElmoBiLM.use_onednn``); the
        module is then for inference only."""
        import torch

        if threads:
            torch.set_num_threads(threads)
        if onednn:
            model.use_onednn()
        self.model = model
        self.name = name

    @classmethod
    def load(cls, options, weights, **kwargs) -> "TorchRunner":
        from stages.elmo.model import load_elmo

        return cls(load_elmo(options, weights), **kwargs)

    def infer(self, inputs: Arrays) -> Arrays:
        import torch

        with torch.no_grad():
            ids = torch.from_numpy(np.ascontiguousarray(inputs["input"]))
            return {"output": self.model(ids).numpy()}


_registered_shared_arena = False


def _register_shared_arena(ort) -> None:
    """One CPU arena for every session of this process that opts in (ONNX Runtime's env allocator)."""
    global _registered_shared_arena
    if not _registered_shared_arena:
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, ort.OrtArenaCfg({}))
        _registered_shared_arena = True


class InputShape:
    """``static_batch`` and ``word_len`` read from a runner's ``input_shape`` (``[B, W, 50]``; a
    non-int axis is free)."""

    input_shape: list

    @property
    def static_batch(self) -> Optional[int]:
        first = self.input_shape[0]
        return first if isinstance(first, int) else None

    @property
    def word_len(self) -> Optional[int]:
        second = self.input_shape[1]
        return second if isinstance(second, int) else None


class OrtRunner(InputShape):
    """ONNX Runtime on a CPU session."""

    def __init__(self, session, name: str = "onnxruntime"):
        self.session = session
        self.name = name
        self.input_shape = session.get_inputs()[0].shape

    @classmethod
    def load(cls, path, *, threads: Optional[int] = None, optimize: bool = True,
             save_optimized: Optional[str] = None, name: str = "onnxruntime", prepack: bool = True,
             arena: bool = True, shared_arena: bool = False,
             dynamic_blocks: Optional[bool] = None) -> "OrtRunner":
        """``shared_arena``: the activations come from one arena shared by every session of this
        process that asks for it, not from an arena of its own. For sessions run one at a time
        (perf's variants): each arena grows to its largest batch and keeps it, and at batch 32 three
        of them held 250 MB more than one shared arena, at the same speed.

        ``dynamic_blocks`` (default: on for a saved offline model, ``optimize=False``; off for a
        plain session such as perf's baseline): the thread pool hands out work in shrinking blocks,
        so a thread the machine delays takes less of it. At batch 1 each LSTM step is one
        weight-bound GEMV split across the threads, and waits for the slower half: the fp32 offline
        model ran 1.07x faster with it in 9 of 10 alternating rounds (2 AVX2 cores), int8 and larger
        batches the same within noise."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        )
        if not arena:  # frees each activation when done: a lower peak where memory is the limit
            options.enable_cpu_mem_arena = False
        elif shared_arena:
            _register_shared_arena(ort)
            options.add_session_config_entry("session.use_env_allocators", "1")
        if dynamic_blocks is None:
            dynamic_blocks = not optimize
        if dynamic_blocks:
            options.add_session_config_entry("session.dynamic_block_base", str(DYNAMIC_BLOCK_BASE))
        if not prepack:  # opens in a fraction of the time; every call repacks the weights instead
            options.add_session_config_entry("session.disable_prepacking", "1")
        if save_optimized:
            options.optimized_model_filepath = str(save_optimized)
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise StageError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]}); rebuild it with make om")
        return cls(session, name=name)

    def infer(self, inputs: Arrays) -> Arrays:
        ids = np.ascontiguousarray(inputs["input"], dtype=np.int32)
        check_input_shape(self.name, self.input_shape, ids)
        (output,) = self.session.run(["output"], {"input": ids})
        return {"output": output}


def infer_all(runner, ids: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Outputs for ``[N, W, 50]`` ids, in batches; a model with a static batch
    gets its last batch topped up with empty rows (exact: padding rows never
    touch real ones) and the extra outputs dropped."""
    static = getattr(runner, "static_batch", None)
    size = static or batch_size
    outputs = []
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        real = len(chunk)
        if static and real < static:
            chunk = np.concatenate([chunk, np.zeros((static - real,) + chunk.shape[1:], dtype=chunk.dtype)])
        outputs.append(runner.infer({"input": chunk})["output"][:real])
    return np.concatenate(outputs)
