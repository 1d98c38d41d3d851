#!/usr/bin/env bash
# (lead) E10's encoder continued 2000 more steps (encoder, adapter, CTC head; fresh warm-up), then greedy CTC.
# (Ran with the listen helper's worktree venv on PATH; any checkout's .venv/bin and experiments/repro/ctc_greedy.py do.)
cd /tmp/r18d; export PATH=/work/wt-listen21/.venv/bin:$PATH OMP_NUM_THREADS=1
N=encoder_e10_s2000p2000; d=pretrained/$N; mkdir -p $d
/usr/bin/time -f "%e s wall %U s user %M KiB" jstip train --params pretrain/encoder.yaml --threads 1 --init-from pretrained/encoder_e10_s2000 --init-parts encoder,projector --steps 2000 --checkpoints $d --plots $d/plots --metrics metrics/pretrain_$N.json --report reports/pretrain_$N.json --progress false > logs/$N.log 2>&1
python /work/wt-listen21/experiments/repro/ctc_greedy.py $d data/test_utterances.parquet --n 100 >> logs/$N.log 2>&1
python /work/wt-listen21/experiments/repro/ctc_greedy.py $d /tmp/r18c/data/utterances.parquet --n 100 >> logs/$N.log 2>&1
echo finished $(date -u +%T) >> logs/$N.log
