"""ELMo deployment pipeline stages: corpus -> ids -> model -> graph -> offline model -> outputs -> reports.

Sub-packages, in the order data flows (imports only point down this list):

- ``common``: errors, atomic writes, hashing, records;
- ``elmo``: options, weights file, character ids, the PyTorch module;
- ``sources``: weights and corpus choice, downloads, the data stage;
- ``graph``: ONNX export, onnxsim, int8 forms;
- ``backends``: runtimes (PyTorch, ONNX Runtime, Ascend) and ``compile``/``infer`` over them;
- ``reports``: accuracy, perf, parity, compare-runs;
- ``tools``: embed, doctor.

``python -m stages <command>`` runs them (``__main__`` holds the registry). The
code must also run inside the export image (Python 3.9, torch 1.9.1), so it
sticks to syntax and APIs that both environments have.
"""
