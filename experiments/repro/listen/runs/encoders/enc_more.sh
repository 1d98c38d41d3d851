#!/usr/bin/env bash
# enc_more.sh FROM STEPS NAME: the shared encoder (pretrain/encoder.yaml) continued from FROM (encoder, adapter and CTC
# head; a fresh warm-up and linear decay) for STEPS more steps into pretrained/NAME, then greedy CTC on 100 test utterances
cd /tmp/r18b; export PATH=/work/wt-listen18/.venv/bin:$PATH OMP_NUM_THREADS=1
d=pretrained/$3; mkdir -p $d
/usr/bin/time -f "%e s wall %U s user %M KiB" jstip train --params pretrain/encoder.yaml --threads 1 --init-from $1 --init-parts encoder,projector --steps $2 --checkpoints $d --plots $d/plots --metrics metrics/pretrain_$3.json --report reports/pretrain_$3.json > $3.log 2>&1
python /work/wt-listen18/experiments/repro/ctc_greedy.py $d data/test_utterances.parquet --n 100 >> $3.log 2>&1
python /work/wt-listen18/experiments/repro/ctc_greedy.py $d data/utterances.parquet --n 100 >> $3.log 2>&1
echo finished >> $3.log
