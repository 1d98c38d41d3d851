"""Inputs and outputs in object storage: a real S3-compatible server (moto's server mode, its own
process on localhost) holds the corpus list and its audio and receives every stage's outputs
(manifests, alignments, sample shards, checkpoints and training states, sharded FSDP states, metrics
and reports), and DVC's remote. Credentials and the endpoint come from the environment, as
s3fs/botocore read them."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import soundfile as sf

from manifests.io import read_records
from manifests.schema import Rejected, Utterance
from pipeline.stage_prepare import PrepareConfig, run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(monkeypatch, tmp_path):
    """An s3fs file system on a moto server started here, with a bucket `corpus`."""
    import moto.server  # noqa: F401  (the dev extra: a missing server fails the test, never skips it)
    import s3fs
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}.items():
            monkeypatch.setenv(key, value)
        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem()
        fs.mkdir("corpus")
        yield fs
    finally:
        server.terminate()
        server.wait(timeout=10)
        s3fs.S3FileSystem.clear_instance_cache()


def _cfg(out, corpus, audio_dir):
    return PrepareConfig(corpus=corpus, domain_text="", test_fraction=0.3, utterances=f"{out}/u.parquet",
                         texts=f"{out}/t.parquet", rejected=f"{out}/r.parquet", metrics=f"{out}/m.json",
                         report=f"{out}/rep.json", audio_dir=audio_dir)


def test_prepare_reads_a_list_and_its_audio_from_s3_and_writes_its_manifests_there(s3, tmp_path, sine):
    local = tmp_path / "local"
    (local / "audio").mkdir(parents=True)
    lines = ["audio,text,offset,duration,speaker"]
    for i in range(4):
        sf.write(local / "audio" / f"a{i}.flac", sine(2.0 + i * 0.25), 16000)
        lines.append(f"audio/a{i}.flac,utterance {i} of the bucket,0.5,1.2,s{i % 2}")
    lines.append("audio/a3.flac,rounded up a little,0,2.76,s1")  # 10 ms past the end: clamped
    lines.append("audio/gone.flac,no such object,,,s0")
    (local / "list.csv").write_text("\n".join(lines) + "\n")
    s3.put(str(local) + "/", "corpus/set/", recursive=True)
    assert s3.isfile("corpus/set/audio/a0.flac")

    remote = run(_cfg("s3://corpus/out", "s3://corpus/set/list.csv", "s3://corpus/out/audio"))
    here = run(_cfg(str(tmp_path / "out"), str(local / "list.csv"), str(tmp_path / "out" / "audio")))
    assert remote == here and remote["utterances"] == 5 and remote["clamped_to_file_end"] == 1
    assert remote["rejected_by_reason"] == {"missing_audio": 1}

    with s3.open("corpus/out/u.parquet", "rb") as f:
        stored = pq.read_table(f).to_pylist()
    expected = [vars(u) for u in read_records(tmp_path / "out" / "u.parquet", Utterance)]
    assert [r["audio_path"] for r in stored] == [e["audio_path"].replace(str(local), "s3://corpus/set")
                                                 for e in expected]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "audio_path"} for r in rows]  # noqa: E731
    assert strip(stored) == strip(expected)  # same ids (relative to the list), splits, times, texts
    with s3.open("corpus/out/r.parquet", "rb") as f:
        [gone] = pq.read_table(f).to_pylist()
    assert gone["reason"].startswith("missing_audio") and "s3://corpus/set/audio/gone.flac" in gone["reason"]
    assert s3.isfile("corpus/out/m.json") and s3.isfile("corpus/out/rep.json")
    assert read_records(tmp_path / "out" / "r.parquet", Rejected)[0].record_id == gone["record_id"]


@pytest.mark.slow
def test_prepare_then_align_with_everything_in_s3_gives_the_local_alignments(s3, tmp_path, spoken):
    from manifests.audio import write_audio
    from manifests.schema import Alignment
    from pipeline.stage_align import AlignConfig, run as align

    local = tmp_path / "local"
    sentences = ["The nurse checked the chart before noon.", "Take two tablets of aspirin after dinner.",
                 "He walked to the station in the rain."]
    lines = ["audio,text,speaker"]
    for i, sentence in enumerate(sentences):
        wave, _ = spoken(sentence, voice="en-us")
        write_audio(wave, local / f"s{i}.wav", 16000)
        lines.append(f"s{i}.wav,{sentence},s{i}")
    (local / "list.csv").write_text("\n".join(lines) + "\n")
    s3.put(str(local) + "/", "corpus/speech/", recursive=True)

    runs = {}
    for where, corpus in (("s3://corpus/run", "s3://corpus/speech/list.csv"), (str(tmp_path / "run"), str(local / "list.csv"))):
        run(_cfg(where, corpus, f"{where}/audio"))
        runs[where] = align(AlignConfig(utterances=f"{where}/u.parquet", out=f"{where}/alignments", aligner="pocketsphinx",
                                        reference="", min_shards=2, metrics=f"{where}/align.json",
                                        report=f"{where}/align_report.json"))
    remote, here = runs["s3://corpus/run"], runs[str(tmp_path / "run")]
    assert remote["aligned"] == here["aligned"] == 3 and remote["shards"] == 2
    assert sorted(s3.ls("corpus/run/alignments")) == ["corpus/run/alignments/part-00000.parquet",
                                                      "corpus/run/alignments/part-00001.parquet"]
    assert read_records("s3://corpus/run/alignments", Alignment) == read_records(tmp_path / "run" / "alignments", Alignment)
    assert align(AlignConfig(utterances="s3://corpus/run/u.parquet", out="s3://corpus/run/alignments",
                             aligner="pocketsphinx", reference="", min_shards=2, metrics=str(tmp_path / "again.json"),
                             report=str(tmp_path / "again_r.json")))["shards_skipped"] == 2  # finished shards found there


TINY_MODEL = {"batch_size": 4, "warmup_steps": 2, "vocab_size": 300, "lm_hidden": 64, "lm_layers": 1, "lm_heads": 2,
              "lm_intermediate": 128, "enc_dim": 64, "enc_layers": 1, "enc_heads": 2, "proj_hidden": 128,
              "context": 256, "progress": False, "log_every": 2, "threads": 1,
              "num_workers": 1}  # a loader process reads the bucket's shards


@pytest.mark.slow
def test_the_whole_flow_reads_and_writes_only_the_bucket(s3, tmp_path, spoken):
    """prepare → align → interleave (2 worker processes; espeak TTS pairs) → train (a loader process; a
    training state mid-run, then a resume from the bucket) → evaluate, every manifest, shard, checkpoint,
    metric and report an s3:// URL (the domain text a folder in the bucket); only the DVC plots are local."""
    from manifests.audio import write_audio
    from manifests.schema import Hypothesis, Sample
    from pipeline.stage_align import AlignConfig, run as align
    from pipeline.stage_evaluate import EvaluateConfig, run as evaluate
    from pipeline.stage_interleave import InterleaveConfig, run as interleave
    from pipeline.stage_train import TrainConfig, run as train

    local = tmp_path / "local"
    sentences = ["The nurse checked the chart before noon.", "Take two tablets of aspirin after dinner.",
                 "He walked to the station in the rain.", "The scan showed no fracture of the wrist.",
                 "Please repeat the dose again tomorrow morning.", "She asked the doctor about her heart.",
                 "The patient slept well through the night.", "Call the pharmacy about the new prescription."]
    lines = ["audio,text,speaker"]
    for i, sentence in enumerate(sentences):
        wave, _ = spoken(sentence, voice="en-us" if i % 2 else "en-us+f3")
        write_audio(wave, local / f"s{i}.wav", 16000)
        lines.append(f"s{i}.wav,{sentence},s{i}")
    (local / "list.csv").write_text("\n".join(lines) + "\n")
    s3.put(str(local) + "/", "corpus/speech/", recursive=True)
    domain = tmp_path / "domain.txt"
    domain.write_text("Aspirin thins the blood.\nThe wrist healed in six weeks.\nTake the tablets with water.\n")
    s3.put(str(domain), "corpus/text/pubmed/domain.txt")

    run_ = "s3://corpus/run"
    cfg = _cfg(run_, "s3://corpus/speech/list.csv", f"{run_}/audio")
    cfg.domain_text, cfg.test_fraction = "s3://corpus/text/", 0.4
    prepared = run(cfg)
    assert prepared["test_utterances"] >= 1 and prepared["texts"] == 3
    aligned = align(AlignConfig(utterances=f"{run_}/u.parquet", out=f"{run_}/alignments", aligner="pocketsphinx",
                                reference="", min_shards=2, metrics=f"{run_}/align.json", report=f"{run_}/align_r.json"))
    assert aligned["aligned"] >= prepared["train_utterances"] - 1
    mixed = interleave(InterleaveConfig(
        utterances=f"{run_}/u.parquet", alignments=f"{run_}/alignments", texts=f"{run_}/t.parquet", out=f"{run_}/samples",
        recipe="asr:2,interleave_word:1,interleave_segment:1,text:1,tts_pair:1", mix_by="samples", shard_size=3,
        embed_audio=True, workers=2, metrics=f"{run_}/interleave.json", report=f"{run_}/interleave_r.json",
        plot=str(tmp_path / "plots" / "seg_{segmenter}.csv"), figure=str(tmp_path / "plots" / "seg.png")))
    assert {"asr", "interleave_word", "text", "tts_pair"} <= set(mixed["samples_by_kind"])
    shards = s3.ls("corpus/run/samples")
    assert [p for p in shards if p.endswith(".parquet")] and s3.ls("corpus/run/samples/tts")  # espeak's audio too
    samples = read_records(f"{run_}/samples", Sample)
    assert sum(s.audio is not None for s in samples) >= 1 and len(samples) == mixed["samples"]

    plots = str(tmp_path / "plots")
    first = train(TrainConfig(samples=f"{run_}/samples", checkpoints=f"{run_}/ckpt", plots=plots,
                              metrics=f"{run_}/train.json", report=f"{run_}/train_r.json", steps=4, save_every=2,
                              keep_states=1, **TINY_MODEL))
    assert s3.ls("corpus/run/ckpt/state") == [f"corpus/run/ckpt/state/step-{first['steps']:08d}"]  # keep_states 1
    assert {"model.safetensors", "speechlm_config.json", "tokenizer.json", "train_log.jsonl"} <= \
        {p.rsplit("/", 1)[1] for p in s3.ls("corpus/run/ckpt")}
    resumed = train(TrainConfig(samples=f"{run_}/samples", checkpoints=f"{run_}/ckpt", plots=plots,
                                metrics=f"{run_}/train.json", report=f"{run_}/train_r.json", steps=6, resume="auto",
                                keep_states=1, **TINY_MODEL))
    report = json.loads(s3.cat("corpus/run/train_r.json"))
    assert report["resumed_from_step"] == first["steps"] and resumed["steps"] > first["steps"]
    log = [json.loads(line) for line in s3.cat("corpus/run/ckpt/train_log.jsonl").decode().splitlines()]
    assert [r["step"] for r in log] == sorted({r["step"] for r in log}) and log[-1]["step"] == resumed["steps"]

    scored = evaluate(EvaluateConfig(checkpoints=f"{run_}/ckpt", utterances=f"{run_}/u.parquet", entities="",
                                     hypotheses=f"{run_}/eval/hyp.parquet", metrics=f"{run_}/eval.json",
                                     report=f"{run_}/eval_r.json", max_new_tokens=8, bootstrap=0, progress=False))
    hypotheses = read_records(f"{run_}/eval/hyp.parquet", Hypothesis)
    assert len(hypotheses) == scored["utterances"] == prepared["test_utterances"] and scored["skipped"] == 0
    assert all(isinstance(h.hypothesis, str) for h in hypotheses)
    for name in ("u.parquet", "t.parquet", "m.json", "align.json", "interleave.json", "train.json", "eval.json"):
        assert s3.isfile(f"corpus/run/{name}")
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "checkpoints").exists()  # nothing fell back to ./

    from corpora.exporters import export
    hf = export(f"{run_}/samples", "hf", f"{run_}/export/hf", f"{run_}/alignments")
    assert hf["exported"] >= 1 and s3.isfile("corpus/run/export/hf/README.md")
    s3.get("corpus/run/export/hf/", str(tmp_path / "hf_copy"), recursive=True)
    import datasets
    loaded = datasets.load_dataset(str(tmp_path / "hf_copy"))
    assert sum(len(split) for split in loaded.values()) == hf["exported"]
    nemo = export(f"{run_}/samples", "nemo", f"{run_}/export/nemo.jsonl", f"{run_}/alignments", kinds="asr")
    lines = [json.loads(line) for line in s3.cat("corpus/run/export/nemo.jsonl").decode().splitlines()]
    assert len(lines) == nemo["exported"] >= 1 and all(x["audio_filepath"].startswith("s3://") for x in lines)


SHARDED_RUN = '''
import json, os, sys
import torch
from trainer.batching import Batching, data_from_shards
from trainer.checkpoint import consolidated, save_checkpoint
from trainer.loop import LoopConfig, train
from trainer.model import SpeechLM, SpeechLMConfig
from trainer.tokenizer import build_tokenizer

samples, out, report, resume = sys.argv[1:5]
rank = int(os.environ["RANK"])
tok = build_tokenizer(%(words)r * 3, vocab_size=150)
torch.manual_seed(0)
model = SpeechLM(SpeechLMConfig(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=64, lm_layers=2,
                                lm_heads=2, lm_intermediate=128, dropout=0.0, ctc_weight=0.5), tok)
data = data_from_shards(samples, tok, model.spec, Batching(batching="packed", batch_size=1, context=64, pool=2), rank, 2)
cfg = LoopConfig(steps=6, lr=3e-3, warmup_steps=2, log_every=1, device="cpu", stage1_share=0.0, parallel="fsdp",
                 save_every=3, keep_states=9, resume=resume)
result = train(model, data, cfg, out_dir=out, tok=tok, progress=False)
plain = consolidated(model, tok, rank)
if rank == 0 and not resume:
    save_checkpoint(plain, tok, out + "/final")
with open(f"{report}-rank{rank}.json", "w") as f:
    json.dump(result.history, f)
'''


@pytest.mark.slow
def test_fsdp_ranks_write_their_shards_to_the_bucket_and_resume_and_evaluate_from_it(s3, tmp_path):
    """Two gloo ranks (torchrun) train with FSDP and `checkpoints` in the bucket: each rank puts its own
    DCP shards there (FsspecWriter); a resume from the bucket's step-3 state repeats steps 4-6 (weights
    and AdamW shards back through FsspecReader), and one process reloads a state from the bucket with
    the weights of the consolidated checkpoint."""
    import subprocess as sp

    import torch

    from tests.test_trainer_fsdp import WORDS, make_shards
    from trainer.checkpoint import latest_state, load_checkpoint

    s3.put(make_shards(tmp_path) + "/", "corpus/samples/", recursive=True)
    script = tmp_path / "run.py"
    script.write_text(SHARDED_RUN % {"words": WORDS})
    repo = str(Path(__file__).resolve().parents[1])

    def launch(report: str, resume: str = "") -> list:
        proc = sp.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
                       "s3://corpus/samples", "s3://corpus/fsdp", str(tmp_path / report), resume],
                      capture_output=True, text=True, timeout=400,
                      env={**os.environ, "PYTHONPATH": repo, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"})
        assert proc.returncode == 0, proc.stderr[-4000:]
        return [json.loads((tmp_path / f"{report}-rank{r}.json").read_text()) for r in range(2)]

    full = launch("full")
    state = "s3://corpus/fsdp/state/step-00000003"
    names = set(s3.ls("corpus/fsdp/state/step-00000003/dcp"))
    assert {n.rsplit("/", 1)[1] for n in names} >= {".metadata", "__0_0.distcp", "__1_0.distcp"}  # one file per rank
    assert not s3.exists("corpus/fsdp/state/step-00000003/model.safetensors")
    assert latest_state("s3://corpus/fsdp") == "s3://corpus/fsdp/state/step-00000006"
    resumed = launch("resumed", resume=state)
    for r in range(2):
        assert [h["step"] for h in resumed[r]] == [4, 5, 6] and resumed[r] == full[r][3:]

    sharded, _ = load_checkpoint("s3://corpus/fsdp/state/step-00000006")  # 2 ranks' shards into one process
    final, _ = load_checkpoint("s3://corpus/fsdp/final")
    a, b = sharded.state_dict(), final.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_dvc_remote_on_the_same_store_pushes_and_pulls_the_outputs(s3, tmp_path):
    """The docs' DVC remote (`dvc remote add -d store s3://...` + `endpointurl`), pushed to and pulled
    from the test's S3 server with the same credentials from the environment."""
    def dvc(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "DVC_NO_ANALYTICS": "1"}, timeout=120)
        assert proc.returncode == 0, f"dvc {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "utterances.parquet").write_bytes(b"manifest bytes " * 100)
    dvc("init", "--no-scm", "-q")
    dvc("add", "data/utterances.parquet")
    dvc("remote", "add", "-d", "store", "s3://corpus/jstip-dvc-cache")
    dvc("remote", "modify", "store", "endpointurl", os.environ["AWS_ENDPOINT_URL"])
    dvc("push")
    assert s3.find("corpus/jstip-dvc-cache")  # the content-addressed files are in the bucket
    (tmp_path / "data" / "utterances.parquet").unlink()
    shutil.rmtree(tmp_path / ".dvc" / "cache")
    dvc("pull")
    assert (tmp_path / "data" / "utterances.parquet").read_bytes() == b"manifest bytes " * 100
