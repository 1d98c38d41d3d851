#!/bin/bash
# rerun_row.sh ROW SEED: one run of a row of experiment.yaml (align when the row changes the alignments,
# interleave, train, evaluate, probe) outside DVC's queue, on the shared stages already built in this workspace
# (data/, pretrained/: `dvc repro evaluate` or run_experiments.py made them). Outputs under $RUNS/ROW-sSEED,
# each step's time and peak memory in its time.txt; at the end the run is recorded (results/runs/ROW-sSEED.json,
# record_run.py dir) and its checkpoints and samples removed. A (row, seed) with a record is skipped unless FORCE=1.
# Used for runs made beside a `dvc repro` that holds the workspace's lock, and for parts of the queue on
# machines where DVC's queue is not wanted. PYTHON picks the interpreter (default: python).
set -e
row=$1; seed=$2; name=$row-s$seed
[ -n "$row" ] && [ -n "$seed" ] || { echo "usage: rerun_row.sh ROW SEED (a row id of experiment.yaml)" >&2; exit 2; }
cd "$(dirname "$0")"
export PYTHONPATH="$(cd ../.. && pwd)" OMP_NUM_THREADS=1
PY=${PYTHON:-python}
if [ -f results/runs/$name.json ] && [ "$FORCE" != 1 ]; then echo "$name: recorded (results/runs/$name.json), skipped; FORCE=1 reruns it"; exit 0; fi
eval "$($PY row_flags.py "$row" "$seed")"   # FLAGS_<stage>, RECORD_SETS (refuses ref and pending rows)
R=${RUNS:-runs_outside_queue}/$name; rm -rf $R; mkdir -p $R
J() { echo "$1" >> $R/time.txt; /usr/bin/time -f "%e s wall %U s user %M KiB" -a -o $R/time.txt $PY -m pipeline.cli "$@"; }
alignments=()
if [ ${#FLAGS_align[@]} -gt 0 ]; then
  J align --params params.yaml "${FLAGS_align[@]}" --workers 1 --out $R/alignments --metrics $R/m_align.json --report $R/r_align.json > $R/align.log 2>&1
  alignments=(--alignments $R/alignments)
fi
J interleave --params params.yaml "${FLAGS_interleave[@]}" "${alignments[@]}" --out $R/samples --metrics $R/m_interleave.json --report $R/r_interleave.json > $R/interleave.log 2>&1
J train --params params.yaml "${FLAGS_train[@]}" --samples $R/samples --checkpoints $R/ck --plots $R/plots --metrics $R/m_train.json --report $R/r_train.json --threads 1 > $R/train.log 2>&1
J evaluate --params params.yaml "${FLAGS_evaluate[@]}" --checkpoints $R/ck --hypotheses $R/hyp.parquet --metrics $R/m_eval.json --report $R/r_eval.json > $R/eval.log 2>&1
J probe --params params.yaml "${FLAGS_probe[@]}" --checkpoints $R/ck --metrics $R/m_probe.json --report $R/r_probe.json > $R/probe.log 2>&1
rm -rf $R/ck $R/samples $R/alignments
$PY record_run.py dir --params params.yaml "${RECORD_SETS[@]}" --metrics eval=$R/m_eval.json --metrics probe=$R/m_probe.json \
  --evaluate-report $R/r_eval.json --source "rerun_row.sh $row $seed ($R)"
echo "$name done $(date +%T)"
