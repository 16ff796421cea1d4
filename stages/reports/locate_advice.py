"""``make locate``'s "what to try next", from the first checkpoint below the gate.

* ascend: the atc options that keep that part in float32. ``--precision_mode`` values come from the
  installed atc's ``--help`` (as ``make om`` checks them); the per-operator options (``--keep_dtype``
  with a file naming the part's operators, ``--modify_mixlist`` with a mixed-precision mode) only
  where that help lists them. ``make om`` passes no per-operator option, so those are written as the
  atc command to run by hand, and the operator list as a file beside the report.
* cpu int8: ``stages/graph/quantize.py`` quantizes every MatMul (and, in the batched form, the char
  CNN's convolutions as MatMuls) and has no option to leave a part in float, so the advice names the
  nodes to exclude (ONNX Runtime's quantizers take such names as ``nodes_to_exclude``) rather than a
  flag that does not exist. The forms it names are the debug model's, read from its manifest.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

from stages.common.atomic import write_text
from stages.common.errors import StageError

FLOAT_MODES = ("force_fp32", "must_keep_origin_dtype")  # modes that keep float32 operators in float32
MIX_MODES = ("allow_mix_precision", "allow_mix_precision_fp16")  # modes --modify_mixlist works with
SHOWN = 12  # node names shown inline; the file holds them all


def _part_nodes(debug_onnx, index: int):
    """(every node, the weighted nodes) of checkpoint ``index`` in the debug graph, or None if unreadable."""
    import onnx

    from stages.graph.checkpoints import checkpoint_nodes, weighted_nodes

    try:
        parts = checkpoint_nodes(onnx.load(str(debug_onnx), load_external_data=False))
    except Exception:  # onnx raises its own DecodeError too; the advice then goes on without node names
        return None
    nodes = parts[index] if index < len(parts) else []
    return nodes, weighted_nodes(nodes)


def _in_real_graph(nodes, real_onnx):
    """The nodes that also exist, with the same operator, in the real model's simplified ONNX."""
    if not real_onnx or not Path(real_onnx).is_file():
        return nodes, False
    import onnx

    real = {(n.name, n.op_type) for n in onnx.load(str(real_onnx), load_external_data=False).graph.node}
    return [n for n in nodes if n in real], True


def _names(nodes) -> str:
    shown = ", ".join(f"`{name}`" for name, _ in nodes[:SHOWN])
    return shown + (f" and {len(nodes) - SHOWN} more" if len(nodes) > SHOWN else "")


def _atc_facts():
    """(precision modes, where listed, the atc help text); atc may be absent where locate runs (docker)."""
    from stages.backends.ascend.atc import CANN51_PRECISION_MODES, atc_help, find_atc, precision_modes

    try:
        tool = find_atc()
    except StageError:
        return CANN51_PRECISION_MODES, "CANN 5.1's list (no atc where locate ran)", ""
    text = atc_help(tool)
    modes, source = precision_modes(tool, help_text=text)
    return modes, source, text


def _ascend(report, part, nodes, report_dir: Path) -> List[str]:
    manifest = report["model"]["manifest"]
    current = manifest.get("precision_mode")
    modes, source, help_text = _atc_facts()
    float_modes = [m for m in FLOAT_MODES if m in modes]
    lines = [f"- The .om ran with `--precision_mode={current}`." if current else
             "- The .om ran with atc's default precision mode (`force_fp16` on inference chips): float32 "
             "operators run in float16 where the chip prefers it."]
    if current in FLOAT_MODES:
        lines.append(f"- {part} already runs in float32 here, so float16 is not the cause: compare the same "
                     f"debug graph on the CPU (`make locate TARGET=cpu`) to see whether the graph itself differs.")
        return lines
    if float_modes:
        lines.append(f"- Keep everything in float32: `make om accuracy TARGET=ascend PRECISION_MODE={float_modes[0]}`"
                     + (f" (or `{float_modes[1]}`, which keeps float32 operators in float32 where the chip has "
                        f"them)" if len(float_modes) > 1 else "") + f"; accepted modes ({source}): "
                     f"{', '.join(modes)}.")
    else:
        lines.append(f"- The installed atc lists no mode that keeps float32 ({source}: {', '.join(modes)}).")
    # The debug .om's atc argv with the real model's paths: same options as make om used.
    command = [{"--model": "--model=<the _sim.onnx make om used>", "--output": "--output=<the .om, without .om>"}
               .get(a.split("=", 1)[0], a) for a in manifest.get("command", [])]
    if nodes is not None and "--keep_dtype" in help_text:
        every = [(name, op) for name, op in nodes[0] if op != "Constant"]  # constants have no precision to keep
        cfg = report_dir / f"keep_dtype_{report['first_below_gate']['name']}.cfg"
        write_text(cfg, "".join(f"{name}\n" for name, _ in every))
        lines.append(f"- Only {part} in float32: this atc has `--keep_dtype`; `{cfg.name}` (beside this report) "
                     f"lists its {len(every)} operators, named as in the simplified ONNX (atc keeps ONNX node "
                     f"names). `make om` passes no such option: run atc by hand on the real model, e.g. "
                     f"`{' '.join(command)} --keep_dtype={cfg}`.")
    if "--modify_mixlist" in help_text:
        types = sorted({op for _, op in (nodes[1] if nodes else [])}) or ["MatMul"]
        mix = next((m for m in MIX_MODES if m in modes), None)
        if mix:
            mixlist = json.dumps({"black-list": {"to-add": types}})
            lines.append(f"- Or mixed precision with those operator types held in float32: `--precision_mode={mix} "
                         f"--modify_mixlist=<file>` with the file `{mixlist}` (this holds every operator of "
                         f"those types, not only this part's).")
    return lines


def _cpu(report, part, nodes, real_onnx) -> List[str]:
    precision = report["precision"]
    first = report["first_below_gate"]
    if precision != "int8":
        return [f"- In float32 ONNX Runtime should agree with PyTorch to rounding (token cosine ~1 - 1e-7): "
                f"{part} computing something else is a graph or export fault there, not precision. Compare "
                f"the simplified ONNX of that part (`stages/graph/export.py`, `stages/elmo/model.py`)."]
    # The debug model's own record says which int8 forms it has: they depend on the onnxruntime
    # that built it (no 8-bit MatMulNBits: DynamicQuantizeMatMul at every batch).
    form = report["model"]["manifest"].get("weights_form") or "unknown (its manifest has no weights_form)"
    lines = ["- `PRECISION=fp32` keeps every layer in float (the int8 speed-up is lost).",
             f"- Failed in: {', '.join(first['runs'])}. The debug model's int8 forms, ONNX Runtime's at every "
             f"batch size (`stages/graph/quantize.py`): {form}.",
             "- `make om` (`CPU_ENGINE=auto`) may serve some batch sizes of the real int8 model with OpenVINO and "
             "NNCF's int8 weights instead (its manifest's `engines` says which); this debug model never does. "
             "`make accuracy CPU_ENGINE=onnxruntime` judges the real model in the forms judged here."]
    if nodes is None:
        return lines + ["- The debug ONNX could not be read to name the nodes of that part."]
    weighted, checked = _in_real_graph(nodes[1], real_onnx)
    matmuls = [n for n in weighted if n[1] in ("MatMul", "Gemm")]
    # char_convolutions.py turns each Conv into `<name>/MatMul` before quantize_dynamic (the batched form);
    # the block-wise quantizer leaves Convs in float.
    convolutions = [(f"{name}/MatMul", "MatMul") for name, op in weighted if op == "Conv"]
    where = "the real simplified ONNX" if checked else "the debug graph (same tracer names)"
    lines.append(f"- No option of this project leaves one part in float: `stages/graph/quantize.py` quantizes "
                 f"every MatMul. To keep {part} in float, exclude its {len(matmuls)} MatMul/Gemm nodes "
                 f"(names in {where}): {_names(matmuls)}. ONNX Runtime's `quantize_dynamic` and "
                 f"`MatMulNBitsQuantizer` both take them as `nodes_to_exclude` (a Gemm becomes `<name>/MatMul` "
                 f"before the block-wise quantizer).")
    if convolutions:
        lines.append(f"- Its {len(convolutions)} char CNN convolutions are int8 too in the batched form: "
                     f"`char_convolutions.py` makes each a MatMul before `quantize_dynamic`, so exclude "
                     f"{_names(convolutions)} there as well.")
    return lines


def next_steps(report: dict, *, debug_onnx: Optional[str], real_onnx: Optional[str], report_dir: Path) -> dict:
    """``lines`` (markdown) and the facts they came from."""
    for stale in Path(report_dir).glob("keep_dtype_*.cfg"):  # an earlier finding's list must not linger
        stale.unlink()
    first = report["first_below_gate"]
    if first is None:
        return {"checkpoint": None, "lines": [
            "- Every checkpoint passes on this sample. If `make accuracy` failed, its failing sentences were not "
            "in the sample (raise `--worst`) or the fault is at padded positions (see `padding_max_abs` per run)."]}
    index = [c["name"] for c in report["checkpoints"]].index(first["name"])
    part = first["label"]
    nodes = _part_nodes(debug_onnx, index) if debug_onnx else None
    lines = [f"- {part} is the first checkpoint below the gate"
             + (f"; every checkpoint before it passes, so the loss starts there." if index else ".")]
    if report["target"] == "ascend":
        lines += _ascend(report, part, nodes, report_dir)
    else:
        lines += _cpu(report, part, nodes, real_onnx)
    return {"checkpoint": first["name"], "lines": lines,
            "nodes": len(nodes[0]) if nodes else None,
            "weighted_nodes": [name for name, _ in nodes[1]] if nodes else None}
