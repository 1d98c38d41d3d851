"""The one strict JSON-lines reader of user files (entity annotations, probe sets): every
non-empty line must be a JSON object; anything else is a `JstipError` naming the file, the line
and the shape expected, never a skipped line."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import JstipError


def read_objects(path: str | Path, expected: str = "a JSON object") -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line of a UTF-8 JSONL file; `expected` shows the
    shape a line should have in the error messages."""
    file = Path(path)
    if not file.is_file():
        raise JstipError(f"{path} does not exist")
    rows = []
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JstipError(f"{path}:{n} is not JSON ({exc}); each line must be {expected}") from exc
        if not isinstance(row, dict):
            raise JstipError(f"{path}:{n} must be a JSON object ({expected}), got {line[:80]!r}")
        rows.append((n, row))
    return rows
