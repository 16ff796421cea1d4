# TEST DOUBLE of `ais_bench.infer.interface` as msit benchmark ships it, release "msit-2024-06" -- NOT
# the real API (no aclruntime, no CANN, no NPU: the fake .om runs on onnxruntime, see
# ../../../_engine/api.py). Same module path as the other releases: ais_bench/infer/interface.py.
#
# Source: Ascend/msit 42a9c807 (2024-06-24), ait/components/benchmark/ais_bench/infer/interface.py:
# infer(feeds, mode='static', custom_sizes=100000, out_array=True) with the mode table static /
# dymbatch / dymhw / dymdims / dymshape ('wrong infer_mode:...' otherwise); 'static' calls
# set_staticbatch(), 'dymbatch' sets the batch from the input's shape; summary(),
# reset_summaryinfo(), free_resource(). (The facts note lists 'dymbatch' and free_resource() under
# 2025 master; this release's source already has both.) No path checks in InferSession here.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))))

from _engine.api import InferSession2024 as InferSession  # noqa: E402

__all__ = ["InferSession"]
