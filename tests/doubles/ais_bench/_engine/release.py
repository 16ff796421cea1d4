# TEST DOUBLE support: how one ais_infer / ais_bench release is described.
#
# A release is data: its command-line flags (``Flag``) and the behaviour
# choices (``Release``) that differ between the real releases. The runner
# (``runner.py``) reads nothing else, so each release's launcher file is a
# thin table with the source of every choice next to it.
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, Tuple


@dataclass(frozen=True)
class Flag:
    """One ``parser.add_argument`` call of a release.

    ``names`` are the option strings exactly as the release passes them (the
    2022 releases really pass ``"--device", "--device"``); ``type`` names an
    entry of ``argtypes.TYPES`` (None: a plain string); ``key`` is the name the
    runner reads the value under, whatever dest the release gives it.
    """

    names: Tuple[str, ...]
    key: str
    type: Optional[str] = None
    default: Any = None
    choices: Any = None
    required: bool = False
    action: Optional[str] = None
    dest: Optional[str] = None
    help: str = ""

    def but(self, **changes) -> "Flag":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Release:
    """Everything the runner needs to behave as one release.

    Field values (each release file cites the source of its choices):
      launcher        "script" (python3 ais_infer.py) or "module" (python3 -m ais_bench)
      checks          None, or the path-security generation: "msit-2024-06" | "master-2025"
      rules           post-parse rules, in the release's order (see runner.RULES)
      output_dir      "mkdir"          os.mkdir(prefix, 0o755): parent must exist, prefix must not
                      "makedirs"       os.makedirs(prefix, 0o755) unless it exists
                      "makedirs-chmod" os.makedirs(prefix, 0o750) unless it exists, then chmod(--output, 0o750)
                      "makedirs-safe"  missing parts made 0o750; an existing prefix must pass the read check
      naming          "sample_id" (sample_id_{n}_output_{i}.fmt) or "stem" ({input stem}_{i}.fmt)
      summary         "inside" (<prefix>/sumary.json) or "beside" (<prefix>_summary.json)
      summary_extras  count per stats block, npu_compute_time_list and pid in the summary
      warmup          ("pure", n, log level): n runs on --pure_data_type data before the inputs are read;
                      ("flag",): --warmup_count runs on the first batch, loop 1
      compute_time    "per_call" (one entry per batch: time of the loop / loop) or "per_execute"
      d2h             "per_output_saved" | "per_batch" | "per_output"
      throughput_line format with {batch}, {mean}, {value}
      all_latency     H2D/D2H lines printed always (True) or only with --display_all_summary
      sort            "plain" or "natural" order of a folder's files
      runcount        "floor" (a short last batch is dropped) or "ceil" (padded with the first file)
      input_check     check_input_parameter's messages: None, "2022" or "msit"
      host_size_check every batch's bytes checked in Python ('ndata size:... not match'), not only
                      batches combined from several files
      progress        the progress line's label ("{mode}": from --run_mode, as 2022-11 on)
      batch_from_model  --batchsize defaults to the model's batch (and a dynamic om needs --dymBatch)
      txt_append      TXT outputs opened for append (the 2022 releases)
      multi_device    --device takes a comma list (one run per device)
      outfmts         output formats the release can write
    """

    id: str
    title: str
    launcher: str
    flags: Tuple[Flag, ...]
    output_dir: str
    naming: str
    summary: str
    summary_extras: bool
    warmup: Tuple[Any, ...]
    compute_time: str
    d2h: str
    throughput_line: str
    all_latency: bool
    sort: str
    runcount: str
    input_check: Optional[str]
    host_size_check: bool
    progress: str
    checks: Optional[str] = None
    rules: Tuple[str, ...] = ()
    batch_from_model: bool = False
    txt_append: bool = False
    multi_device: bool = False
    sources: Tuple[str, ...] = field(default=())
