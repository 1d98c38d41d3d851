#!/usr/bin/env bash
# The shared parts of the listen experiments (issue 18), in a scratch directory W (default /tmp/r18) holding
# copies of experiments/repro/params.yaml and pretrain/: the world corpus without the TTS and probe audio
# (the ASR-only row's WER/EER needs neither), the ASR training and test manifests, the stage-0 LM.
# The same commands as experiments/repro/dvc.yaml's shared stages; one process at a time, one thread, nice 15
# (NICE=0 for normal priority). WORLD_ARGS: extra world-corpus options, e.g. the easy acoustic condition of E5
# (listen/README.md); LM_FROM: a directory holding an already trained stage-0 LM (pretrained/lm) to copy
# instead of training it again (the world text does not depend on the speech options: E5 checks it).
set -euo pipefail
W=${W:-/tmp/r18}
cd "$W"
export OMP_NUM_THREADS=1
run() { echo "+ $*"; nice -n "${NICE:-15}" /usr/bin/time -f "%e s wall %U s user %M KiB" "$@"; }
[ -f data/world/test.jsonl ] || run jstip world-corpus --params params.yaml --tts-audio false --probe-audio false ${WORLD_ARGS:-}
run jstip prepare --params params.yaml
run jstip prepare --params params.yaml --corpus data/world/test.jsonl --corpus-name world_test \
  --domain-text "" --utterances data/test_utterances.parquet --texts data/test_texts.parquet \
  --rejected data/test_rejected.parquet --metrics metrics/prepare_test.json --report reports/prepare_test.json
run jstip prepare --params params.yaml --corpus "" --domain-text data/world/world_text.txt \
  --utterances data/lm_utterances.parquet --texts data/world_texts.parquet --rejected data/lm_rejected.parquet \
  --metrics metrics/prepare_lm.json --report reports/prepare_lm.json
if [ -n "${LM_FROM:-}" ]; then
  mkdir -p pretrained && cp -r "$LM_FROM/pretrained/lm" pretrained/
else
  run jstip interleave --params pretrain/lm.yaml
  run jstip train --params pretrain/lm.yaml
fi
run jstip interleave --params pretrain/encoder.yaml
