"""bench/gpu_check.sh refuses clearly without CUDA, and its driver's CPU mode runs the same code path
(FSDP over one rank and DDP, packed rows, the MFU accounting) and prints the same fields."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIELDS = {"mode", "device", "attention", "lm_parameters", "parameters", "context", "rows", "steps", "precision",
          "tokens_per_step", "s_per_step", "tokens_per_s", "tokens_per_s_per_device", "mfu", "mfu_model",
          "peak_tflops", "peak_memory_gb", "loss_first", "loss_last"}


def test_gpu_check_refuses_without_cuda():
    proc = subprocess.run(["bash", str(REPO / "bench/gpu_check.sh")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable})
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr and "--cpu-tiny" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.slow
def test_gpu_check_cpu_mode_prints_both_modes():
    proc = subprocess.run([sys.executable, str(REPO / "bench/gpu_check.py"), "--cpu-tiny", "--steps", "2",
                           "--warmup", "1", "--context", "128", "--batches", "2"], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["mode"] for r in lines] == ["fsdp", "ddp"]
    for r in lines:
        assert set(r) == FIELDS and r["device"] == "cpu" and r["tokens_per_s"] > 0 and 0 < r["mfu"] < r["mfu_model"]
        assert r["context"] == 128 and r["tokens_per_step"] <= 128 and r["peak_memory_gb"] > 0
    fsdp, ddp = lines
    assert fsdp["loss_first"] == pytest.approx(ddp["loss_first"], rel=1e-5)  # same model, same batch
    assert "tokens/s per device, MFU LM" in proc.stdout
