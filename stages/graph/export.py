"""ONNX export of the project's ELMo module (or allennlp's, in the export image).

Static shapes by default because atc compiles fixed shapes; ``--dynamic-batch``
makes the batch axis symbolic for runtimes that take it (ONNX Runtime).
"""
from __future__ import annotations

import inspect
import time
import warnings
from pathlib import Path

import numpy as np

from stages.common.atomic import atomic_path, write_json
from stages.elmo.charids import MAX_CHARS
from stages.common.progress import step
from stages.common.errors import StageError
from stages.graph.onnx_info import describe

OPSET = 11  # what atc in CANN 5.1 accepts


def example_ids(batch: int, word_len: int) -> np.ndarray:
    """Mixed-length rows of real-looking ids, so tracing sees padding too."""
    rng = np.random.default_rng(0)
    ids = np.zeros((batch, word_len, MAX_CHARS), dtype=np.int32)
    for row in range(batch):
        n = word_len - (row % word_len)
        ids[row, :n, 0] = 259  # begin-of-word mark (+1)
        ids[row, :n, 1:6] = rng.integers(98, 123, size=(n, 5))
        ids[row, :n, 6] = 260  # end-of-word mark (+1)
        ids[row, :n, 7:] = 261  # padding character (+1)
    return ids


def export_native(options, weights, out_path, *, batch: int, word_len: int, dynamic_batch: bool = False,
                  layers: bool = False, checkpoints: bool = False) -> dict:
    """``layers``: output ``[B, n_layers + 1, W, D]`` (token layer, each LSTM layer) instead of the mix.
    ``checkpoints``: the same with the mix appended, ``[B, n_layers + 2, W, D]``: ``make locate``'s
    debug graph, which compares each part of the deployed model on its own."""
    import torch

    from stages.elmo.model import load_elmo

    model = load_elmo(options, weights)

    class EveryLayer(torch.nn.Module):
        """The module's layers (and, for ``checkpoints``, the mix from them) as its forward, so the
        tracer names these nodes under the same scope as the real graph's (``/elmo/MatMul_12``):
        make locate can then name the real graph's nodes from the debug graph's."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, ids):
            parts = self.model.layers(ids)[0]
            return torch.stack(parts + [self.model.mix(parts)] if checkpoints else parts, dim=1)

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.elmo = EveryLayer() if layers or checkpoints else model

        def forward(self, input):  # noqa: A002 - the ONNX input is named "input"
            return self.elmo(input)

    return _export(Graph().eval(), out_path, batch=batch, word_len=word_len, dynamic_batch=dynamic_batch,
                   exporter="native")


def _export(module, out_path, *, batch, word_len, dynamic_batch, exporter) -> dict:
    import onnx
    import torch

    dummy = torch.tensor(example_ids(batch, word_len))
    kwargs = dict(
        opset_version=OPSET,
        input_names=["input"],
        output_names=["output"],
        do_constant_folding=True,
    )
    if dynamic_batch:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        # The TorchScript exporter: the dynamo one does not write opset 11.
        kwargs["dynamo"] = False
    started = time.perf_counter()
    with atomic_path(out_path) as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is chosen on purpose (opset 11); its deprecation notice is noise.
            warnings.simplefilter("ignore", DeprecationWarning)
            with step(f"export: tracing ELMo to ONNX opset {OPSET} ({Path(out_path).name})"):
                torch.onnx.export(module, (dummy,), str(tmp), **kwargs)
        try:
            onnx.checker.check_model(str(tmp))
        except onnx.checker.ValidationError as exc:
            raise StageError(f"{out_path}: exported graph fails onnx.checker ({exc})")
        info = describe(onnx.load(str(tmp), load_external_data=False))
    info.update(exporter=exporter, opset=OPSET, export_seconds=round(time.perf_counter() - started, 2),
                batch=("dynamic" if dynamic_batch else batch), word_len=word_len)
    return info


COMMAND = "export"
COMMAND_HELP = dict(help="export ELMo to ONNX (opset 11)")


def add_arguments(parser) -> None:
    parser.add_argument("--source", help="source.json of the weights stage (instead of --options/--weights)")
    parser.add_argument("--options")
    parser.add_argument("--weights")
    parser.add_argument("--out", required=True, help="ONNX file to write; a .json sidecar records how")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--word-len", type=int, default=8)
    parser.add_argument("--dynamic-batch", action="store_true")
    parser.add_argument("--all-layers", action="store_true", help="output [B, layers, W, D] instead of the mix")
    parser.add_argument("--checkpoints", action="store_true",
                        help="output [B, n_layers + 2, W, D]: every layer, then the mix (make locate's debug graph)")
    parser.add_argument("--exporter", choices=("native", "allennlp"), default="native")


def run(args) -> int:
    if args.batch < 1 or args.word_len < 1:
        raise StageError("--batch and --word-len must be at least 1")
    if args.source:
        from stages.sources.weights import load_source

        chosen = load_source(args.source)
        args.options, args.weights = chosen["options"], chosen["weights"]
    if not (args.options and args.weights):
        raise StageError("give --source, or both --options and --weights")
    if args.exporter == "allennlp":
        if args.all_layers or args.checkpoints:
            raise StageError("--all-layers and --checkpoints are only available with --exporter native")
        from stages.graph.export_allennlp import export_allennlp

        info = export_allennlp(args.options, args.weights, args.out, batch=args.batch, word_len=args.word_len,
                               dynamic_batch=args.dynamic_batch)
    else:
        info = export_native(args.options, args.weights, args.out, batch=args.batch, word_len=args.word_len,
                             dynamic_batch=args.dynamic_batch, layers=args.all_layers,
                             checkpoints=args.checkpoints)
    info["path"] = str(args.out)
    write_json(str(args.out) + ".json", info)
    print(f"exported {args.out}: {info['nodes']} nodes, opset {info['opset']}, {info['export_seconds']} s")
    return 0
