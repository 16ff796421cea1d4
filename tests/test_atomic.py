"""Write-then-rename: nothing half-written is ever taken as done."""
from __future__ import annotations

import subprocess
import sys

import pytest

from stages.common.atomic import atomic_path, write_json


def test_success_renames_and_failure_leaves_nothing(tmp_path):
    dest = tmp_path / "out.json"
    write_json(dest, {"a": 1})
    assert dest.read_text().strip().startswith("{")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "other.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_orphans_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".out.bin.tmp-{int(dead.stdout)}"
    orphan.write_bytes(b"partial")
    with atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
