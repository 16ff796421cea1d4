"""OpenVINO as a CPU backend: a loader (read the simplified ONNX or a saved IR,
compile it with a precision setting, compress weights with NNCF) and a runner
with the same ``infer({"input": ids}) -> {"output": ...}`` as the others.

``make perf`` times it as a *peer* (``PERF_PEERS=openvino``): the runtime a
CPU user would reach for, judged by the same accuracy gate as the project's
models. It is also one of the cpu target's engines: an offline model carries
OpenVINO compiled models for the batch sizes OpenVINO ran faster when it was
built (``stages/backends/engines.py``). OpenVINO and NNCF are imported only
when used, so every other stage works where they are not installed.
"""
