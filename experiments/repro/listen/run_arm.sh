#!/usr/bin/env bash
# run_arm.sh NAME [jstip train options…]: one ASR-only listen experiment in the scratch directory W (default
# /tmp/r18, made by shared.sh, with pretrained/encoder from `jstip train --params pretrain/encoder.yaml`):
# train with params.yaml's train section and the given overrides on the ASR training samples, then
# `jstip evaluate` on all 618 held-out test utterances and greedy CTC of the encoder on the first 100 of them.
# Outputs in W/runs/NAME; python summarize.py NAME prints the figures. One thread, nice 15. EVAL_ARGS: extra
# `jstip evaluate` options, e.g. EVAL_ARGS="--ctc-weight 0.5 --num-beams 4" (joint CTC/LM decoding, E11); a later
# `--samples DIR` among the train options replaces the ASR-only samples (another recipe's interleave output).
set -euo pipefail
name=$1; shift
HERE=$(cd "$(dirname "$0")" && pwd)
W=${W:-/tmp/r18}
cd "$W"
export OMP_NUM_THREADS=1
R=runs/$name; mkdir -p "$R"
echo "jstip train --params params.yaml $*; evaluate ${EVAL_ARGS:-}" > "$R/command.txt"
t() { nice -n "${NICE:-15}" /usr/bin/time -f "%e s wall %U s user %M KiB" -a -o "$R/time.txt" "$@"; }
echo "train" >> "$R/time.txt"
t jstip train --params params.yaml --samples data/encoder_samples --checkpoints "$R/ck" --plots "$R/plots" \
  --metrics "$R/m_train.json" --report "$R/r_train.json" --threads 1 --progress false "$@" > "$R/train.log" 2>&1
echo "evaluate" >> "$R/time.txt"
t jstip evaluate --params params.yaml --checkpoints "$R/ck" --hypotheses "$R/hyp.parquet" --metrics "$R/m_eval.json" \
  --report "$R/r_eval.json" ${EVAL_ARGS:-} > "$R/eval.log" 2>&1
echo "ctc" >> "$R/time.txt"
t python "$HERE/../ctc_greedy.py" "$R/ck" data/test_utterances.parquet --n 100 > "$R/ctc.log" 2>&1
echo "$name done $(date -u +%T)"
