"""Every command in the documentation names something that exists: a `jstip` verb with options it
takes, a script with the flags it parses, a make target. The README's tour is run for real on a
small corpus of the test's own (the demo project's examples run in tests/test_end_to_end.py)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.doc_commands import DOCS, REPO, argv, blocks, commands

# commands of other tools the docs may show (their own documentation is theirs)
EXTERNAL = {"dvc", "git", "pip", "mkdir", "conda", "mfa", "apt-get", "echo", "xargs", "torchrun", "dask", "ls", "cat",
            "export", "source", "huggingface-cli", "bash"}


def _jstip_args(words: list[str]) -> list[str] | None:
    if words[0] == "jstip":
        return words[1:]
    if words[0] == "torchrun" and "$(which jstip)" in words:  # torchrun … $(which jstip) VERB …
        return words[words.index("$(which jstip)") + 1:]
    if words[:3] == ["python", "-m", "pipeline.cli"]:
        return words[3:]
    return None


def _flags_of(script: Path) -> set[str]:
    return set(re.findall(r"""add_argument\(\s*["'](--[\w-]+)""", script.read_text()))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_documented_command_exists(doc):
    from pipeline.cli import build_parser

    makefile = (REPO / "Makefile").read_text()
    parser = build_parser()
    for command in commands(doc):
        where = f"{doc.relative_to(REPO)}:{command.line}: {command.text}"
        words = argv(command)
        args = _jstip_args(words)
        if args is not None:
            try:
                parser.parse_args(args)
            except SystemExit as exc:
                assert exc.code == 0, f"{where}: jstip does not take these arguments"
        elif words[0] == "make":
            for target in words[1:]:
                if "=" not in target:
                    assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"{where}: no make target {target}"
        elif words[0] in ("python", "python3") or words[0].endswith((".sh", ".py")):
            script = words[1] if words[0].startswith("python") else words[0]
            path = (REPO / command.cwd / script).resolve()
            assert path.is_file(), f"{where}: {script} does not exist (from {command.cwd})"
            if path.suffix == ".py":
                unknown = {w.split("=")[0] for w in words if w.startswith("--")} - _flags_of(path) - {"--help"}
                assert not unknown, f"{where}: {script} parses no {sorted(unknown)}"
        else:
            assert words[0] in EXTERNAL, f"{where}: unknown command {words[0]!r}; teach tests/test_docs.py about it"


SENTENCES = ["The nurse checked the chart.", "Take two tablets after dinner.", "The scan showed no fracture.",
             "Please repeat the dose tomorrow.", "He walked to the station.", "The clinic opens at nine."]
# the tour's defaults train for minutes; the test scales the model and steps down after `jstip init`
TINY = {"train": {"steps": 10, "batch_size": 2, "warmup_steps": 2, "vocab_size": 200, "lm_hidden": 32, "lm_layers": 1,
                  "lm_heads": 2, "lm_intermediate": 64, "enc_dim": 32, "enc_layers": 1, "enc_heads": 2,
                  "proj_hidden": 64, "context": 256, "progress": False},
        "prepare": {"test_fraction": 0.3}, "evaluate": {"max_new_tokens": 8, "progress": False},
        "probe": {"demo_items": 4, "shots": 1, "bootstrap": 50, "progress": False}}


@pytest.mark.slow
def test_the_readme_tour_runs_as_written(tmp_path, spoken):
    """The README's tour, line by line, on six espeak utterances (paths substituted, sizes scaled)."""
    if shutil.which("jstip", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the jstip command is not installed in this environment (pip install -e .)")
    from manifests.audio import write_audio

    corpus = tmp_path / "corpus" / "spk"
    for i, sentence in enumerate(SENTENCES):
        audio, _ = spoken(sentence, voice="en-us" if i % 2 else "en-us+f3")
        write_audio(audio, corpus / f"utt{i}.wav", 16000)
        (corpus / f"utt{i}.lab").write_text(sentence + "\n")
    (tmp_path / "domain.txt").write_text("The nurse gave the dose.\nTablets are taken after dinner.\n")
    tour = next(b for b in blocks(REPO / "README.md", "bash") if "jstip init" in b)
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
           "DVC_NO_ANALYTICS": "1"}
    env.pop("PYTHONPATH", None)
    cwd, ran = tmp_path, []
    for raw in tour.splitlines():
        line = re.sub(r"\s+#.*$", "", raw).strip()
        line = line.replace("/path/to/corpus", str(tmp_path / "corpus")).replace("/path/to/domain.txt",
                                                                                 str(tmp_path / "domain.txt"))
        if not line or line.startswith("pip install"):  # jstip is installed already
            continue
        for part in (p.strip() for p in line.split("&&")):
            if part.startswith("cd "):
                cwd = cwd / part[3:]
                continue
            done = subprocess.run(part, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
            assert done.returncode == 0, f"README tour: {part} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            ran.append((part, done.stdout))
            if part.startswith("jstip init"):
                params = yaml.safe_load((cwd / "params.yaml").read_text())
                for section, values in TINY.items():
                    params[section].update(values)
                (cwd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    outputs = dict(ran)
    assert "asr" in outputs["jstip stats data/samples"]
    assert "wer" in outputs["dvc metrics show"] and "aligned_share" in outputs["dvc metrics show"]
