#!/bin/bash
# rerun_row.sh RECIPE SEED: one Table I run (interleave, train, evaluate, probe) outside DVC's queue, on the
# shared stages already in this workspace (data/, pretrained/), outputs under $RUNS/RECIPE-sSEED.
# Used after the trainer's data-order fix, which DVC sees as a change of the shared pretrained stages, and
# for runs made beside a `dvc repro` that holds the workspace's lock. Each step's time and peak memory: $R/time.txt.
# Record it: python record_run.py dir --params params.yaml --set interleave.recipe=RECIPE --set interleave.seed=SEED
#   --set train.seed=SEED --metrics eval=$R/m_eval.json --metrics probe=$R/m_probe.json --evaluate-report $R/r_eval.json
set -e
recipe=$1; seed=$2; name=$recipe-s$seed
cd "$(dirname "$0")"
export PYTHONPATH="$(cd ../.. && pwd)" OMP_NUM_THREADS=1
R=${RUNS:-runs_outside_queue}/$name; mkdir -p $R
J() { echo "$1" >> $R/time.txt; /usr/bin/time -f "%e s wall %U s user %M KiB" -a -o $R/time.txt ${PYTHON:-python} -m pipeline.cli "$@"; }
J interleave --params params.yaml --recipe $recipe --seed $seed --out $R/samples --metrics $R/m_interleave.json --report $R/r_interleave.json > $R/interleave.log 2>&1
J train --params params.yaml --seed $seed --samples $R/samples --checkpoints $R/ck --plots $R/plots --metrics $R/m_train.json --report $R/r_train.json --threads 1 > $R/train.log 2>&1
J evaluate --params params.yaml --checkpoints $R/ck --hypotheses $R/hyp.parquet --metrics $R/m_eval.json --report $R/r_eval.json > $R/eval.log 2>&1
J probe --params params.yaml --checkpoints $R/ck --metrics $R/m_probe.json --report $R/r_probe.json > $R/probe.log 2>&1
rm -rf $R/ck $R/samples
echo "$name done $(date +%T)"
