"""The one exception type stages raise for problems the user can fix."""


class StageError(Exception):
    """A one-line message naming the file or setting at fault and the fix."""


def stale_record(record, problem: str, redo: str, schema: str = "") -> StageError:
    """``problem`` found in a folder that no longer matches its record: the record is removed, so
    rerunning the same make command redoes ``redo`` instead of trusting the folder again. Only a
    record of ``schema`` is removed: a folder this project did not write is never touched."""
    import json
    from pathlib import Path

    record = Path(record)
    try:
        ours = not schema or json.loads(record.read_text(encoding="utf-8")).get("schema") == schema
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        return StageError(f"{problem}; rerun the same make command to redo {redo}")
    try:
        record.unlink()
        done = f"removed {record}, so rerunning the same make command redoes {redo}"
    except OSError as exc:
        done = f"could not remove {record} ({exc.strerror}): delete it, then rerun to redo {redo}"
    return StageError(f"{problem}; {done}")
