#!/usr/bin/env bash
# enc10.sh STEPS (E10): the shared encoder (pretrain/encoder.yaml) on the ASR training speech of /tmp/r18c plus its
# respoken copies (respeak.py, data/respoken/list.jsonl), STEPS steps, in W=/tmp/r18d; then greedy CTC on the test
# speech, the original training speech, the respoken training speech and the first 100 test sentences spoken by
# training voices. Normal priority, one thread; each step's time and peak memory (time -v) in logs/.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/../.." && pwd)
W=${W:-/tmp/r18d}
cd "$W"; export OMP_NUM_THREADS=1 PATH=$HERE/../../../.venv/bin:$PATH
s=$1; d=pretrained/encoder_e10_s$s; mkdir -p logs "$d"
t() { local n=$1; shift; echo "+ $* ($(date -u +%T))"; /usr/bin/time -v -o "logs/$n.time" "$@"; }
[ -d data/encoder_samples ] || {
  t prepare jstip prepare --params params.yaml --corpus data/respoken/list.jsonl --utterances data/utterances.parquet \
    --texts data/texts.parquet --rejected data/prepare_rejected.parquet
  t interleave jstip interleave --params pretrain/encoder.yaml
}
t train_s$s jstip train --params pretrain/encoder.yaml --threads 1 --steps "$s" --checkpoints "$d" --plots "$d/plots" \
  --metrics "metrics/pretrain_encoder_e10_s$s.json" --report "reports/pretrain_encoder_e10_s$s.json" > "logs/train_s$s.log" 2>&1
for m in data/test_utterances.parquet /tmp/r18c/data/utterances.parquet data/respoken/utterances.parquet \
         /tmp/r18b/respoken/test_hardtrainvoices/utterances.parquet; do
  python "$HERE/../ctc_greedy.py" "$d" "$m" --n 100
done
echo "finished $(date -u +%T)"
