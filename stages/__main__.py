"""``python -m stages <command> ...``: one entry point for every stage.

The registry below names each command's module. A command module defines
``COMMAND`` (its name), ``COMMAND_HELP`` (``add_parser`` keywords),
``add_arguments(parser)`` and ``run(args)`` returning an exit code; the
sub-parser and its ``func`` are made here, once. Errors a user can fix are
raised as ``StageError`` and printed as one line, without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from stages.common.errors import StageError

# In the order data flows: corpus and weights -> graph -> offline model -> outputs -> reports.
COMMANDS = (
    "stages.sources.weights",
    "stages.sources.dataset_source",
    "stages.sources.data",
    "stages.graph.export",
    "stages.graph.simplify",
    "stages.backends.compile",
    "stages.backends.infer",
    "stages.reports.accuracy",
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


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to finish; nothing partial is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
