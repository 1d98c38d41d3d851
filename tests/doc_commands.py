"""The commands of the documentation (README.md, docs/*.md, experiments/repro/README.md), read from
their ```bash and ```python blocks, for the tests that check or run them (tests/test_docs.py,
tests/test_end_to_end.py): the documentation cannot drift from the code unnoticed."""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "experiments" / "repro" / "README.md"]
_BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Command:
    doc: Path
    line: int
    text: str  # one simple command, comment stripped
    cwd: str  # the folder it runs in, relative to the repository (after the block's `cd`s)


def blocks(doc: Path, language: str) -> list[str]:
    return [m.group(2) for m in _BLOCK.finditer(doc.read_text()) if m.group(1) == language]


def _strip_comment(line: str) -> str:
    out, quote = [], ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            break
        out.append(ch)
    return "".join(out).strip()


def commands(doc: Path) -> list[Command]:
    """Every simple command of the doc's bash blocks, split at `&&`, `;` and `|`, loops unwrapped."""
    found = []
    text = doc.read_text()
    for match in _BLOCK.finditer(text):
        if match.group(1) != "bash":
            continue
        first = text[: match.start(2)].count("\n") + 1
        cwd = "."
        for n, raw in enumerate(match.group(2).splitlines()):
            line = _strip_comment(raw)
            for part in re.split(r"\s*(?:&&|;|\|)\s*", line):
                part = re.sub(r"^(do|then|else)\s+", "", part.strip())
                if not part or part.startswith(("for ", "done", "fi", "if ")):
                    continue
                if part.startswith("cd "):
                    cwd = str(Path(cwd) / part[3:].strip())
                    continue
                found.append(Command(doc, first + n, part, cwd))
    return found


def argv(command: Command) -> list[str]:
    """The command's words without leading variable assignments and wrappers."""
    words = shlex.split(command.text)
    while words and (re.match(r"^[A-Z_]+=", words[0]) or words[0] in ("nice", "sudo") or words[0].endswith("/time")):
        words = words[1:] if not words[0].endswith("/time") else [w for w in words[1:] if w != "-v"]
    if words and words[0].startswith(".venv/bin/"):
        words[0] = words[0][len(".venv/bin/"):]
    return words
