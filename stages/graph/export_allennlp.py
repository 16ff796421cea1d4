"""ONNX export with allennlp's own ``Elmo``: the seed guide's route.

Runs only in the export image (Python 3.9, torch 1.9.1, allennlp 2.7.0 with
docker/allennlp-opset11.patch applied), where ``python -m stages export
--exporter allennlp`` reaches it. ``allennlp_eager`` runs the same module
without ONNX, for the parity check.

What tracing allennlp's module bakes into the graph: allennlp reads the
sentence lengths of the example batch into Python numbers (to place the
end-of-sentence marks and to size its LSTM steps), so the graph is exact only
for batches whose rows are as long as the example's. The example here fills
every row to ``word_len`` tokens, so full rows match allennlp eager; a row
ending in zero (padding) rows is run as if the padding were tokens. For the
same reason the batch size is fixed; ``dynamic_batch`` is refused.

One change to the traced graph: the If nodes torch 1.9 wraps around the
squeeze of each biLSTM layer are replaced by plain Squeezes (see
``_unguard_split_squeezes``), so that onnxsim 0.4.36 can simplify it.
"""
from __future__ import annotations

import inspect
import time
import warnings
from pathlib import Path

import numpy as np

from stages.common.atomic import atomic_path
from stages.elmo.charids import MAX_CHARS, batch_ids
from stages.common.errors import StageError
from stages.graph.onnx_info import describe

OPSET = 11
# The line docker/allennlp-opset11.patch writes into _ElmoBiLm.forward.
PATCHED_LINE = "torch.split(lstm_outputs, 1, dim=0)"


def _allennlp():
    """torch and allennlp's ``elmo`` module, or a StageError saying where they are."""
    try:
        with warnings.catch_warnings():
            # google-auth and friends warn about Python 3.9 on import; they
            # are allennlp's dependencies, not used here.
            warnings.simplefilter("ignore", FutureWarning)
            import torch
            from allennlp.modules import elmo as elmo_module
    except ImportError as exc:
        raise StageError(
            f"the allennlp exporter needs torch 1.9 and allennlp 2.7.0 ({exc}); "
            "run it in the export image (make image-export, RUNNER=docker)"
        )
    source = inspect.getsource(elmo_module._ElmoBiLm.forward)
    if PATCHED_LINE not in source:
        raise StageError(
            f"{elmo_module.__file__} lacks the opset-11 edit ({PATCHED_LINE}): "
            "apply docker/allennlp-opset11.patch, or use the export image, which has it"
        )
    return torch, elmo_module


def _fresh_elmo(options, weights):
    """A newly built allennlp ``Elmo`` in eval mode.

    New for every call because the module is stateful: after a forward pass it
    keeps each row's LSTM state and starts the next batch from it, and
    tracing such a module freezes that state into the graph.
    """
    for label, path in (("options", options), ("weights", weights)):
        if not Path(path).is_file():
            raise StageError(f"ELMo {label} file {path} not found")
    torch, elmo_module = _allennlp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = elmo_module.Elmo(str(options), str(weights), 1, dropout=0.0)
    return torch, model.eval()


def _own_tensor_memory(torch, module) -> None:
    """Give every parameter, buffer and plain tensor attribute of ``module`` its own memory.

    allennlp makes some of them over numpy arrays (``torch.from_numpy`` for
    the sentence-mark ids, ``torch.FloatTensor(array)`` for the character
    embedding). The ONNX exporter of torch 1.9 keeps the graph's constants in
    a process-wide map that is destroyed after Python has shut down; freeing a
    numpy-backed tensor then needs the GIL, and the process dies with SIGSEGV
    (exit status 139) after the export has succeeded.
    """
    with torch.no_grad():
        for param in module.parameters():
            param.data = param.data.clone()
    for sub in module.modules():
        for name, value in list(vars(sub).items()):
            if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter):
                setattr(sub, name, value.clone())
        for name, value in list(sub._buffers.items()):
            if value is not None:
                sub._buffers[name] = value.clone()


def _full_rows(batch: int, word_len: int) -> np.ndarray:
    """Example ids with every row ``word_len`` tokens long (see the module doc)."""
    words = ("the", "model", "reads", "every", "token", "of", "this", "sentence")
    rows = [[words[(r + i) % len(words)] for i in range(word_len)] for r in range(batch)]
    return batch_ids(rows, word_len)


def export_allennlp(options, weights, out_path, *, batch: int, word_len: int, dynamic_batch: bool = False) -> dict:
    """Export allennlp ``Elmo`` (one mixed output, dropout 0) to ONNX opset 11.

    Graph: int32 ``input`` [batch, word_len, 50] -> float32 ``output``
    [batch, word_len, 2 * projection_dim]. Written to a temporary name and
    renamed, so an interrupted export leaves no file behind.
    """
    if batch < 1 or word_len < 1:
        raise StageError("batch and word_len must be at least 1")
    if dynamic_batch:
        raise StageError(
            "the allennlp exporter cannot make the batch dynamic: allennlp loops over the example's rows "
            "in Python, so the traced graph has the batch size built in; use --exporter native"
        )
    import onnx

    torch, elmo = _fresh_elmo(options, weights)
    _own_tensor_memory(torch, elmo)

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.elmo = elmo

        def forward(self, input):  # noqa: A002 - the ONNX input is named "input"
            return self.elmo(input)["elmo_representations"][0]

    example = torch.tensor(_full_rows(batch, word_len))
    started = time.perf_counter()
    with atomic_path(out_path) as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about every Python number it bakes in; the
            # module doc says which ones matter.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                Graph().eval(),
                (example,),
                str(tmp),
                opset_version=OPSET,
                input_names=["input"],
                output_names=["output"],
                do_constant_folding=True,
            )
        model = onnx.load(str(tmp))
        unguarded = _unguard_split_squeezes(model)
        if unguarded:
            onnx.save(model, str(tmp))
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            raise StageError(f"{out_path}: exported graph fails onnx.checker ({exc})")
        info = describe(model)
    import allennlp

    info.update(
        exporter="allennlp",
        opset=OPSET,
        export_seconds=round(time.perf_counter() - started, 2),
        batch=batch,
        word_len=word_len,
        torch=torch.__version__,
        allennlp=allennlp.__version__,
        traced_rows="full",
        unguarded_squeezes=unguarded,
    )
    return info


def _unguard_split_squeezes(model) -> int:
    """Replace ``If(size == 1, Squeeze, Identity)`` by ``Squeeze`` where the size is 1 by construction.

    torch 1.9 exports ``x.squeeze(0)`` at opset 11 as such an If whenever it
    does not know the size of the axis, which is the case for the pieces of
    the patched ``torch.split(lstm_outputs, 1, dim=0)``. A Split into pieces
    of 1 along the squeezed axis makes the condition always true. onnxsim
    0.4.36 (the newest for Python 3.9) fails on these If nodes ("Inferred
    elem type differs"), and a graph without control flow suits atc better.
    Returns how many were replaced.
    """
    from onnx import AttributeProto, helper

    producer = {out: node for node in model.graph.node for out in node.output}
    nodes, replaced = [], 0
    for node in model.graph.node:
        squeeze = _guarded_squeeze(node, producer, AttributeProto)
        if squeeze is None:
            nodes.append(node)
            continue
        source, axes = squeeze
        name = f"{node.name or node.output[0]}_squeeze"
        nodes.append(helper.make_node("Squeeze", [source], list(node.output), name=name, axes=axes))
        replaced += 1
    if replaced:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return replaced


def _guarded_squeeze(node, producer, AttributeProto):
    """(source, axes) when ``node`` is the If described above, else None."""
    if node.op_type != "If":
        return None
    branches = {a.name: a.g for a in node.attribute}
    then, other = branches.get("then_branch"), branches.get("else_branch")
    if then is None or other is None or len(then.node) != 1 or len(other.node) != 1:
        return None
    squeeze, identity = then.node[0], other.node[0]
    if squeeze.op_type != "Squeeze" or identity.op_type != "Identity" or squeeze.input[0] != identity.input[0]:
        return None
    axes = [list(a.ints) for a in squeeze.attribute if a.name == "axes"]
    split = producer.get(squeeze.input[0])
    if len(axes) != 1 or len(axes[0]) != 1 or split is None or split.op_type != "Split" or len(split.input) != 1:
        return None
    attrs = {a.name: (a.i if a.type == AttributeProto.INT else list(a.ints)) for a in split.attribute}
    if attrs.get("axis", 0) != axes[0][0] or not attrs.get("split") or set(attrs["split"]) != {1}:
        return None
    return squeeze.input[0], axes[0]


def allennlp_eager(options, weights, char_ids: np.ndarray) -> np.ndarray:
    """allennlp ``Elmo`` output for ``char_ids`` [B, W, 50], from a fresh (zero-state) module."""
    char_ids = np.asarray(char_ids)
    if char_ids.ndim != 3 or char_ids.shape[-1] != MAX_CHARS:
        raise StageError(f"character ids must be [batch, words, {MAX_CHARS}], got {list(char_ids.shape)}")
    torch, elmo = _fresh_elmo(options, weights)
    with torch.no_grad():
        out = elmo(torch.from_numpy(char_ids.astype(np.int64)))["elmo_representations"][0]
    return out.numpy().astype(np.float32)
