"""``python -m stages <command> ...``: one entry point for every stage.

The registry below names each command's module. A command module defines
``COMMAND`` (its name), ``COMMAND_HELP`` (``add_parser`` keywords),
``add_arguments(parser)`` and ``run(args)`` returning an exit code; the
sub-parser and its ``func`` are made here, once. Errors a user can fix are
raised as ``StageError`` and printed as one line, without a traceback; so are
OS errors (read-only folder, full disk, permissions, path too long), with the
path and the fix (``STAGES_TRACEBACK=1`` shows the traceback instead).
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from stages.common.errors import StageError

# In the order data flows: corpus and weights -> graph -> offline model -> outputs -> reports.
COMMANDS = (
    "stages.sources.weights",
    "stages.sources.dataset_source",
    "stages.sources.data",
    "stages.sources.fixtures",
    "stages.graph.export",
    "stages.graph.simplify",
    "stages.backends.compile",
    "stages.backends.openvino.compress",
    "stages.backends.infer",
    "stages.reports.accuracy",
    "stages.reports.accuracy_index",
    "stages.reports.prune_references",
    "stages.reports.locate",
    "stages.reports.buckets",
    "stages.reports.perf",
    "stages.reports.parity",
    "stages.reports.compare_runs",
    "stages.tools.embed",
    "stages.tools.doctor",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stages", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # A stage whose optional dependency is absent (e.g. torch in the
            # runtime image) must not take the other commands down with it.
            if exc.name and exc.name.startswith("stages"):
                raise
            continue
        command = subparsers.add_parser(module.COMMAND, **module.COMMAND_HELP)
        module.add_arguments(command)
        command.set_defaults(func=module.run)
    return parser


# What to do about the OS errors a user can fix, by errno.
OS_FIXES = {
    errno.EROFS: "the filesystem is read-only: set ARTIFACTS to a writable folder",
    errno.ENOSPC: "no space left on the device: free some, or set ARTIFACTS to a folder on another disk",
    errno.EDQUOT: "disk quota exceeded: free some, or set ARTIFACTS to a folder on another disk",
    errno.EACCES: "permission denied: make it writable for you, or set ARTIFACTS to a folder you own",
    errno.EPERM: "operation not permitted: make it yours, or set ARTIFACTS to a folder you own",
    errno.ENAMETOOLONG: "the path is too long: set ARTIFACTS to a shorter folder",
}


def os_error_line(exc: OSError) -> str:
    """One line naming the path and the fix; nothing half-written stays (stages write atomically)."""
    where = exc.filename if exc.filename is not None else "(no path)"
    fix = OS_FIXES.get(exc.errno, "check the path and rerun")
    return f"error: {where}: {exc.strerror or exc} [errno {exc.errno}]; {fix}"


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if os.environ.get("STAGES_TRACEBACK") == "1":
            raise
        print(os_error_line(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to finish; nothing partial is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
