# TEST DOUBLE support: the "NPU" of the ais_bench doubles.
#
# Opens a pretend device (FAKE_NPU_COUNT devices, default 1; FAKE_AIS_FAIL_DEVICE=N fails
# device N) and runs the fake .om written by tests/doubles/cann/*/ascend-toolkit/latest/bin/atc (tests/doubles/pylib/
# fake_om.py: it carries the ONNX model) with onnxruntime on the CPU. The log lines follow
# aclruntime's C++ backend (Ascend/tools@4ce01e3 ais-bench_workload/tool/ais_infer/backend/
# base/module: DeviceManager.cpp "acl init success" / "open device %d success" / "acl open
# device %d failed"; model_process.cpp "load model %s success", CheckDynamicBatchSize's
# messages; ModelInferenceProcessor.cpp "Check i:%d name:%s in size:%d needsize:%zu not
# match", "check failed dym gearcount:%d but dymtype:%d not set"; a failing call surfaces in
# Python as a RuntimeError).
from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import numpy as np

PYLIB = Path(__file__).resolve().parents[2] / "pylib"
ACL_FAILURE = "[-1][ACL: general failure] "
DTYPES = {"tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(float)": np.float32,
          "tensor(float16)": np.float16, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def _fake_om():
    # by path, so that tests/doubles/pylib (which also holds an older ais_bench double) need not be on sys.path
    spec = importlib.util.spec_from_file_location("fake_om", PYLIB / "fake_om.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The CLI's backend logs at INFO; the Python API's InferSession sets aclruntime's log_level to 2
# unless debug=True, so only [WARN]/[ERROR] lines show there (api.py turns this off).
SHOW_INFO = True


def _print(line):
    if SHOW_INFO or not line.startswith("[INFO]"):
        print(line, flush=True)


def open_device(device: int) -> None:
    count = int(os.environ.get("FAKE_NPU_COUNT", "1"))
    failing = os.environ.get("FAKE_AIS_FAIL_DEVICE")
    _print("[INFO] acl init success")
    if device < 0 or device >= count or (failing not in (None, "") and int(failing) == device):
        _print(f"EE1001: The argument is invalid. (test double: device {device}, FAKE_NPU_COUNT={count})")
        _print(f"        open device {device} failed, runtime result = 507033.")
        _print(f"[ERROR] acl open device {device} failed")
        raise RuntimeError(ACL_FAILURE)
    _print(f"[INFO] open device {device} success")


class Session:
    """The loaded model: one input, its shape after --dymBatch, and onnxruntime to run it."""

    def __init__(self, path: str, device: int):
        open_device(device)
        import onnxruntime

        try:
            self.meta, onnx_bytes = _fake_om().read(path)
        except (OSError, ValueError) as exc:
            _print(f"[ERROR] load model from file failed, model file is {path} ({exc})")
            raise RuntimeError(ACL_FAILURE) from exc
        _print(f"[INFO] load model {path} success")
        _print("[INFO] create model description success")
        self.session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        feed = self.session.get_inputs()[0]
        self.name = self.meta.get("input_name", feed.name)
        self.dtype = np.dtype(DTYPES.get(feed.type, np.float32))
        self.dims = list(self.meta["input_shape"])
        self.gears = list(self.meta.get("dynamic_batch_size") or [])
        self.dynamic = self.dims[0] == -1
        # like aclruntime: a dynamic om's input size is its largest gear's until --dymBatch picks one
        self.batch = max(self.gears) if self.dynamic and self.gears else self.dims[0]
        self.batch_set = not self.dynamic
        first = feed.shape[0] if feed.shape else None
        # atc rewrites the batch dim; onnxruntime keeps the ONNX one, so such models run row by row
        self.fixed_onnx_batch = first if isinstance(first, int) else None

    @property
    def shape(self):
        return [self.batch] + self.dims[1:]

    @property
    def realsize(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def model_batch(self) -> int:
        """inputs[0].shape[0] as the session reports it (-1 for a dynamic om)."""
        return self.dims[0]

    def set_dynamic_batchsize(self, batch: int) -> None:
        if not self.gears:
            _print("[ERROR] the dynamic_batch_size parameter is not specified for model conversion")
            raise RuntimeError(ACL_FAILURE)
        if batch not in self.gears:
            _print("[ERROR] the dymBatch parameter is not correct")
            _print(f"[INFO] model dynamic batch gears: {self.gears}")
            raise RuntimeError(ACL_FAILURE)
        _print("[INFO] check dynamic batch success")
        self.batch = batch
        self.batch_set = True

    def check_input(self, data: bytes) -> np.ndarray:
        if not self.batch_set:
            _print(f"[WARN] check failed dym gearcount:{len(self.gears)} but dymtype:0 not set")
            raise RuntimeError(ACL_FAILURE)
        if len(data) != self.realsize:
            _print(f"[ERROR] Check i:0 name:{self.name} in size:{len(data)} needsize:{self.realsize} not match")
            raise RuntimeError(ACL_FAILURE)
        return np.frombuffer(data, dtype=self.dtype).reshape(self.shape)

    def execute(self, array: np.ndarray):
        """One model execution; its outputs and how long it took (ms, wall clock)."""
        started = time.perf_counter()
        try:
            if self.fixed_onnx_batch is None or self.fixed_onnx_batch == array.shape[0]:
                outputs = self.session.run(None, {self.name: array})
            else:
                rows = [self.session.run(None, {self.name: array[i:i + 1]}) for i in range(array.shape[0])]
                outputs = [np.concatenate([r[k] for r in rows], axis=0) for k in range(len(rows[0]))]
        except Exception as exc:  # an execution the "NPU" cannot do
            _print(f"[ERROR] acl execute failed:507011 (test double: onnxruntime: {exc})")
            _print("[ERROR] Execute Infer failed ret:507011")
            raise RuntimeError(ACL_FAILURE) from exc
        return outputs, (time.perf_counter() - started) * 1000.0

    def close(self) -> None:
        _print("[INFO] unload model success, model Id is 1")
