# TEST DOUBLE of `ais_bench.infer.interface`, release "ais_bench-2025-master" -- NOT the real API (no
# aclruntime, no CANN, no NPU: the fake .om runs on onnxruntime, see ../../../_engine/api.py).
#
# Source: Ascend/tools master 8da7f645 (gitee, 2025-12-18; history carried by github
# Yanguan619/aclruntime), ais-bench_workload/tool/ais_bench/ais_bench/infer/interface.py and
# interface_check.py: as msit 2024-06 (modes static / dymbatch / dymhw / dymdims / dymshape, 'static'
# resets the batch, summary(), reset_summaryinfo(), free_resource()), plus InferSession's argument
# checks: the om path (path security rules, .om suffix), device_id an int in 0..255, loop > 0; and
# set_context().
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))))

from _engine.api import InferSession2025 as InferSession  # noqa: E402

__all__ = ["InferSession"]
