# TEST DOUBLE for Huawei's ais_bench inference tool: run it as
# `python3 -m ais_bench` with PYTHONPATH=tests/doubles/pylib. It runs the
# fake .om files that tests/doubles/bin/atc writes (ONNX inside) with
# onnxruntime on the CPU. It is not the real tool and has no NPU code.
