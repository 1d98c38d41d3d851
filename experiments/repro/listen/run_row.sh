#!/usr/bin/env bash
# run_row.sh RECIPE SEED: one Table I row at the listening CPU preset (issue 18, E12) in the scratch directory W
# (default /tmp/r18g: shared.sh's world with composed frames, its stage-0 LM, the aligned ASR speech, and the
# E10c encoder as pretrained/encoder_e10_s4000): `jstip interleave` of RECIPE at SEED (no TTS pools: the
# scratch world has no TTS audio), then run_arm.sh with the preset's stage 2 and joint decoding; outputs in
# W/runs/E12_RECIPE_sSEED. Record it with ../record_run.py dir (see README.md, session 5).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=${W:-/tmp/r18g}
cd "$W"; export OMP_NUM_THREADS=1 PATH=$HERE/../../../.venv/bin:$PATH
r=$1; s=$2; out=data/samples_${r}_s$s
mkdir -p metrics reports
[ -d "$out" ] || /usr/bin/time -f "%e s wall %U s user %M KiB" -o "logs_il_${r}_s$s.time" jstip interleave \
  --params params.yaml --tts-texts "" --tts-recordings "" --tts-alignments "" --recipe "$r" --seed "$s" --out "$out" \
  --metrics "metrics/il_${r}_s$s.json" --report "reports/il_${r}_s$s.json" > "logs_il_${r}_s$s.log" 2>&1
W=$W NICE=${NICE:-0} EVAL_ARGS="--ctc-weight 0.5 --num-beams 8" "$HERE/run_arm.sh" "E12_${r}_s$s" --steps 800 --stack 2 \
  --speech-positions ctc_spikes --speech-pool-input posteriors --init-parts encoder,ctc --lr 0.002 \
  --init-from pretrained/encoder_e10_s4000 --samples "$out" --seed "$s"
