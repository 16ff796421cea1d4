"""Reading the pipeline's JSON records back, with one-line errors that say
which stage to rerun."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from stages.common.errors import StageError


def read_record(path, *, missing: str, schema: Optional[str] = None) -> dict:
    """The JSON object at ``path``; ``missing`` is the fix to suggest when it
    is absent, unreadable, or not of ``schema``."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageError(f"{path}: not found; {missing}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StageError(f"{path}: not valid JSON ({exc}); {missing}") from None
    if not isinstance(record, dict) or (schema and record.get("schema") != schema):
        raise StageError(f"{path}: not a {schema or 'JSON object'} record; {missing}")
    return record
