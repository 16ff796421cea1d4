"""``python -m stages <command> ...``: one entry point for every stage.

Each stage module exposes ``register(subparsers)``, which adds its sub-command
and sets ``func`` to a callable taking the parsed arguments and returning an
exit code. Errors a user can fix are raised as ``StageError`` and printed as
one line, without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import StageError

STAGE_MODULES = (
    "weights",
    "dataset_source",
    "data",
    "embed",
    "export",
    "simplify",
    "compile",
    "infer",
    "accuracy",
    "perf",
    "parity",
    "compare_runs",
    "doctor",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stages", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in STAGE_MODULES:
        try:
            module = importlib.import_module(f".{name}", __package__)
        except ModuleNotFoundError as exc:
            # A stage whose optional dependency is absent (e.g. torch in the
            # runtime image) must not take the other commands down with it.
            if exc.name and exc.name.startswith(__package__):
                raise
            continue
        module.register(subparsers)
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
