"""Runtimes behind one interface: a loader builds or loads a model for a runtime, a runner has
``infer(inputs) -> outputs``. ``runners`` holds PyTorch and ONNX Runtime, ``ascend/`` atc and ais_bench;
``compile`` and ``infer`` are written once against them."""
