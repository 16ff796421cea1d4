"""Shared engine of the ais_infer / ais_bench TEST DOUBLES (not the real tools).

Each release folder next to this package holds a thin launcher that describes its
release (flags and behaviour, ``release.Release``) and hands it to ``run``.
"""
from . import flags
from .release import Flag, Release
from .runner import run

__all__ = ["Flag", "Release", "flags", "run"]
