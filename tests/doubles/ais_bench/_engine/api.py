# TEST DOUBLE support: ais_bench's Python API, `ais_bench.infer.interface.InferSession` -- NOT the
# real one (no aclruntime, no CANN, no NPU). The "NPU" is model.py's: the fake .om's ONNX model run
# with onnxruntime on the CPU, the same engine the CLI doubles use, so both give the same outputs.
#
# Written from the public sources (each release's interface.py names its own):
#   T-11  Ascend/tools 484491f0 (2022-11-29) ais-bench_workload/tool/ais_infer/ais_bench/infer/interface.py
#         and backend/python/src/PyInferenceSession/PyInferenceSession.cpp (the pybind11 layer):
#         infer(feeds, mode='static', custom_sizes=100000) only acts on 'dymshape'/'dymdims'; any other
#         mode string just runs (no check, no set_staticbatch), so a dynamic-batch om is driven by
#         set_dynamic_batchsize(n) first. sumary() (sic), reset_sumaryinfo(), finalize(); no free_resource.
#   M-24  Ascend/msit 42a9c807 (2024-06-24) ait/components/benchmark/ais_bench/infer/interface.py:
#         infer(feeds, mode='static', custom_sizes=100000, out_array=True) looks the mode up in
#         infer_mode_switch {static, dymbatch, dymhw, dymdims, dymshape}; anything else is
#         RuntimeError('wrong infer_mode:...'); 'static' calls set_staticbatch() (which drops a batch
#         set before); 'dymbatch' takes the batch from the first -1 dim of the input's shape
#         ("not a dymbatch model!" when the om has none). summary(), reset_summaryinfo(),
#         free_resource(), infer_pipeline(), infer_iteration().
#   T-25  Ascend/tools master 8da7f645 (2025-12-18; github Yanguan619/aclruntime carries it)
#         ais-bench_workload/tool/ais_bench/ais_bench/infer/interface.py + interface_check.py: as M-24,
#         and __init__ checks the om path (path security rules, .om suffix), the device id (int, 0..255)
#         and the loop; set_context().
# All: InferSession(device_id, model_path, acl_json_path=None, debug=False, loop=1); get_inputs()/
# get_outputs() give descs with .name .shape .datatype .size .realsize; set_dynamic_batchsize is bound
# to C++ SetDynamicBatchsize(int) (a str is pybind11's TypeError; a batch not among the om's gears is
# a RuntimeError); the input is handed over as raw bytes whose size must equal the model's input size
# at the chosen batch; outputs come back at the running batch. A failing C++ call is RuntimeError.
#
# Not simulated (they raise RuntimeError saying so, rather than pretend): acl_json_path, modes dymhw,
# dymdims and dymshape, aclruntime.Tensor or torch feeds. infer_pipeline / infer_iteration are absent.
# FAKE_AIS_API_LOG=<file>: every session open, infer and free_resource appends one JSON line
# {"event", "device", "batch", "pid"} there, so a test can see which devices did the work.
from __future__ import annotations

import json
import os
import threading
from types import SimpleNamespace

import numpy as np

from . import model, pathcheck

model.SHOW_INFO = False  # the interface's default log_level 2: warnings and errors only
LOG_ENV = "FAKE_AIS_API_LOG"
_log_lock = threading.Lock()


def _record(event: str, device: int, **more) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = json.dumps(dict(event=event, device=device, pid=os.getpid(), **more)) + "\n"
    with _log_lock, open(path, "a", encoding="utf-8") as handle:
        handle.write(line)


def _not_simulated(what: str) -> RuntimeError:
    return RuntimeError(f"test double: {what} is not simulated by this ais_bench API double")


class SumaryInfo:
    """aclruntime's ``sumary`` object: ``exec_time_list`` holds each execution's time in ms."""

    def __init__(self):
        self.exec_time_list = []


class _InferSessionBase:
    def __init__(self, device_id: int, model_path: str, acl_json_path: str = None, debug: bool = False,
                 loop: int = 1):
        if acl_json_path is not None:
            raise _not_simulated("acl_json_path (profiling / dump)")
        model.SHOW_INFO = bool(debug)  # aclruntime's log level is one process-wide setting
        self.device_id = device_id
        self.model_path = model_path
        self.loop = loop
        self._model = model.Session(model_path, device_id)
        self._info = SumaryInfo()
        outputs = self._model.session.get_outputs()
        self.outputs_names = [o.name for o in outputs]
        _record("open", device_id, model=os.path.basename(model_path))

    # -- descriptions ---------------------------------------------------------------------------
    def get_inputs(self):
        m = self._model
        size = int(np.prod([max(m.gears or [1])] + m.dims[1:])) * m.dtype.itemsize if m.dynamic else m.realsize
        return [SimpleNamespace(name=m.name, shape=list(m.dims), datatype=m.dtype.name, format=2, size=size,
                                realsize=m.realsize)]

    def get_outputs(self):
        return [SimpleNamespace(name=o.name, shape=[d if isinstance(d, int) else -1 for d in o.shape],
                                datatype=o.type, format=2)
                for o in self._model.session.get_outputs()]

    # -- batch selection ------------------------------------------------------------------------
    def set_staticbatch(self):
        m = self._model
        if m.dynamic:  # the dynamic type goes back to static: no batch chosen any more
            m.batch_set = False
            m.batch = max(m.gears) if m.gears else m.dims[0]

    def set_dynamic_batchsize(self, dym_batch):
        if isinstance(dym_batch, (bool, str, bytes, float)) or not hasattr(dym_batch, "__index__"):
            raise TypeError("set_dynamic_batchsize(): incompatible function arguments. The following argument "
                            f"types are supported:\n    1. (self, arg0: int) -> int\n\nInvoked with: {dym_batch!r}")
        self._model.set_dynamic_batchsize(int(dym_batch))

    # -- running --------------------------------------------------------------------------------
    def _arrays(self, feeds):
        if len(feeds) != 1:
            raise RuntimeError("input datas and intensors nums not matched!")
        arrays = []
        for feed in feeds:
            if isinstance(feed, np.ndarray):
                arrays.append(np.ascontiguousarray(feed))
            elif type(feed) in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.float16, np.float32):
                arrays.append(np.array(feed))
            elif hasattr(feed, "type") or type(feed).__name__ == "Tensor":
                raise _not_simulated("torch / aclruntime.Tensor feeds")
            else:
                raise RuntimeError("type:{} invalid".format(type(feed)))
        return arrays

    def _run(self, arrays):
        (array,) = arrays
        fed = self._model.check_input(array.tobytes())  # raw bytes, checked against the input size
        outputs = None
        for _ in range(self.loop):
            outputs, ms = self._model.execute(fed)
            self._info.exec_time_list.append(ms)
        _record("infer", self.device_id, batch=int(fed.shape[0]), model=os.path.basename(self.model_path))
        return [np.array(o) for o in outputs]

    def _sumary(self):
        return self._info

    def _reset(self):
        self._info = SumaryInfo()


class InferSession2022(_InferSessionBase):
    """T-11: any mode but dymshape/dymdims runs as is; sumary(); no free_resource."""

    def infer(self, feeds, mode="static", custom_sizes=100000):
        arrays = self._arrays(feeds)
        if mode in ("dymshape", "dymdims"):
            raise _not_simulated(f"mode {mode!r}")
        return self._run(arrays)

    def sumary(self):
        return self._sumary()

    def reset_sumaryinfo(self):
        self._reset()

    def finalize(self):
        pass  # aclruntime's process-wide finalize; nothing to release in the double


class InferSession2024(_InferSessionBase):
    """M-24: the mode table, 'static' resets the batch, 'dymbatch' sets it from the input; summary()."""

    MODES = ("static", "dymbatch", "dymhw", "dymdims", "dymshape")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.infer_mode_switch = {"static": self._static_prepare, "dymbatch": self._dymbatch_prepare,
                                  "dymhw": self._unsimulated("dymhw"), "dymdims": self._unsimulated("dymdims"),
                                  "dymshape": self._unsimulated("dymshape")}
        self._freed = False

    @staticmethod
    def _unsimulated(mode):
        def prepare(shapes):
            raise _not_simulated(f"mode {mode!r}")
        return prepare

    def _static_prepare(self, shapes):
        self.set_staticbatch()

    def _dymbatch_prepare(self, shapes):
        (desc,) = self.get_inputs()
        for shape in shapes:
            for j, dim in enumerate(shape):
                if desc.shape[j] < 0:
                    self.set_dynamic_batchsize(dim)
                    return
                if desc.shape[j] != dim:
                    raise RuntimeError("input datas and intensors dim not matched!")
        raise RuntimeError("not a dymbatch model!")

    def infer(self, feeds, mode="static", custom_sizes=100000, out_array=True):
        if self._freed:
            raise RuntimeError(model.ACL_FAILURE)  # the model was unloaded
        arrays = self._arrays(feeds)
        prepare = self.infer_mode_switch.get(mode)
        if prepare is None:
            raise RuntimeError('wrong infer_mode:{}, only support "static","dymbatch","dymhw", '
                               '"dymdims","dymshape"'.format(mode))
        prepare([a.shape for a in arrays])
        return self._run(arrays)

    def summary(self):
        return self._sumary()

    def reset_summaryinfo(self):
        self._reset()

    def free_resource(self):
        if not self._freed:
            self._freed = True
            self._model.close()
            _record("free", self.device_id, model=os.path.basename(self.model_path))

    @staticmethod
    def finalize():
        pass


class InferSession2025(InferSession2024):
    """T-25: M-24 plus the argument checks of interface_check.py in __init__."""

    def __init__(self, device_id: int, model_path: str, acl_json_path: str = None, debug: bool = False,
                 loop: int = 1):
        if not model_path:
            raise RuntimeError("empty model path!")
        pathcheck.check_path_legality("master-2025", model_path, perm="read", max_size=pathcheck.OM_MAX,
                                      suffix=["om"])
        if not isinstance(device_id, int):
            raise TypeError(f"device:{device_id} is not a integer!")
        if device_id < 0 or device_id > 255:
            raise ValueError(f"device:{device_id} is illegal. legal value range is [0, 255]")
        if not isinstance(loop, int) or loop <= 0:
            raise ValueError(f"input value:{loop} is out of range. Please check.")
        super().__init__(device_id, model_path, acl_json_path, debug, loop)

    def set_context(self):
        pass  # one "device context" per process in the double
