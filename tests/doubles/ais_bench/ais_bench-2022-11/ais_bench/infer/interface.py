# TEST DOUBLE of `ais_bench.infer.interface`, release "ais_bench-2022-11" -- NOT the real API (no
# aclruntime, no CANN, no NPU: the fake .om runs on onnxruntime, see ../../../_engine/api.py).
#
# Source: Ascend/tools 484491f0 (2022-11-29, the interface as of the 2022-11 release),
# ais-bench_workload/tool/ais_infer/ais_bench/infer/interface.py: InferSession(device_id, model_path,
# acl_json_path=None, debug=False, loop=1); infer(feeds, mode='static', custom_sizes=100000) acts only
# on 'dymshape'/'dymdims' and runs any other mode as is, so a dynamic-batch om needs
# set_dynamic_batchsize(n) (C++ int) before infer; sumary() and reset_sumaryinfo() (sic); finalize();
# no free_resource, no 'dymbatch' mode.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))))

from _engine.api import InferSession2022 as InferSession  # noqa: E402

__all__ = ["InferSession"]
