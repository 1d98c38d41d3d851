#!/usr/bin/env bash
# The shared pretrained encoder (experiments/repro/pretrain/encoder.yaml as committed: encE, letter CTC on the
# 20 ms frames, adapter at 80 ms, the stage-0 LM frozen, 1,500 steps) in the scratch directory W, then how well
# it listens: `jstip evaluate` (the frozen stage-0 LM writes) and greedy CTC on 100 test utterances.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=${W:-/tmp/r18}
cd "$W"
export OMP_NUM_THREADS=1
t() { echo "+ $*"; nice -n "${NICE:-15}" /usr/bin/time -f "%e s wall %U s user %M KiB" "$@"; }
t jstip train --params pretrain/encoder.yaml --threads 1 "$@"
t jstip evaluate --params pretrain/encoder.yaml
t python "$HERE/../ctc_greedy.py" pretrained/encoder data/test_utterances.parquet --n 100
