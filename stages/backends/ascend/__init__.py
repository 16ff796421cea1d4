"""The Ascend (Huawei NPU) target: find the chips, compile ONNX to .om with
atc, run the .om with ais_bench.

Nothing here imports CANN: every tool is a separate program (``npu-smi``,
``atc``, ``python3 -m ais_bench``) found at run time, so the package imports
on any host and fails with a one-line ``StageError`` where a tool is missing.

- ``npu_smi``: parse ``npu-smi info``, pick the soc_version, check device ids.
- ``atc``: the atc command line, finding atc, its version, ``compile_om``.
- ``om_manifest``: the sidecar ``<model>.om.json`` that says how an .om was built.
- ``ais_summary``: read ais_bench's summary JSON (both folder layouts).
- ``shards``: split inputs across devices and gather the outputs back.
- ``ais_tool``: find the installed ais_bench and read the flags it accepts.
- ``tool_paths``: folders and files in the form ais_bench's path checks accept.
- ``ais_bench``: run ais_bench for inference and for pure-inference timing.
- ``session``: runners for ``embed``: ais_bench's Python API in-process, else its CLI.
"""
