#!/usr/bin/env bash
# enc.sh STEPS: the shared encoder (pretrain/encoder.yaml) at STEPS steps into pretrained/encoder_sSTEPS, then greedy CTC
cd /tmp/r18b; export PATH=/work/wt-listen18/.venv/bin:$PATH OMP_NUM_THREADS=1
s=$1; d=pretrained/encoder_s$s; mkdir -p $d
/usr/bin/time -f "%e s wall %U s user %M KiB" jstip train --params pretrain/encoder.yaml --threads 1 --steps $s --checkpoints $d --plots $d/plots --metrics metrics/pretrain_encoder_s$s.json --report reports/pretrain_encoder_s$s.json > enc_s$s.log 2>&1
python /work/wt-listen18/experiments/repro/ctc_greedy.py $d data/test_utterances.parquet --n 100 >> enc_s$s.log 2>&1
echo finished >> enc_s$s.log
