#!/usr/bin/env bash
# One-GPU check (issue 17, deliverable 7): a ~1.1B Llama-shaped LM with a speech encoder on packed
# 8192-token rows, FSDP over one device and DDP, bf16, flash-attention's varlen kernel when flash_attn
# imports; prints tokens/s, the MFU of the LM and of the whole model, and peak memory. Capped at 8
# minutes. Without CUDA it refuses with exit status 2 (see bench/gpu_check.py; --cpu-tiny checks the
# code path on CPU). Extra arguments go to bench/gpu_check.py.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
exec timeout 480 env PYTHONPATH="$repo" "$python" "$repo/bench/gpu_check.py" "$@"
