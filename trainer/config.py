"""The training run's settings: one dataclass whose fields are `jstip train`'s options and
params.yaml's `train:` keys (each with its help). Imports no torch, so `jstip --help` stays fast."""
from __future__ import annotations

from dataclasses import dataclass, field

# each plot file: (file name, columns after `step`)
PLOTS = {"loss": ("train_loss.csv", ("loss",)), "lr": ("train_lr.csv", ("lr",)),
         "padding": ("train_padding.csv", ("padding_share",)),
         "throughput": ("train_throughput.csv", ("tokens_per_s", "audio_s_per_s", "mfu"))}


@dataclass
class TrainConfig:
    samples: str = field(default="data/samples", metadata={"help": "directory of Sample shards (part-*.parquet)"})
    checkpoints: str = field(default="checkpoints", metadata={"help": "output directory: weights, configs, tokenizer, "
                                                                      "log, state/step-* training states"})
    plots: str = field(default="plots", metadata={"help": "directory of the plot CSVs, written as the run goes: "
                                                          + ", ".join(f for f, _ in PLOTS.values())})
    metrics: str = field(default="metrics/train.json", metadata={"help": "the run's numeric metrics (dvc metrics)"})
    report: str = field(default="reports/train.json", metadata={"help": "the run's report: skipped samples by reason "
                                                                        "with examples, stages, sizes, settings"})
    vocab_size: int = field(default=1000, metadata={"help": "BPE vocabulary size, special tokens included"})
    tokenizer_chars: int = field(default=2_000_000, metadata={"help": "characters of sample text (from row groups "
                                                                      "spread over the corpus) the tokenizer is trained on"})
    encoder: str = field(default="conv", metadata={"help": "speech encoder: conv (from scratch), whisper, or hf (a "
                                                           "local wav2vec2, HuBERT, wav2vec2-conformer or w2v-BERT "
                                                           "model through transformers' AutoModel)"})
    encoder_path: str = field(default="", metadata={"help": "whisper: local model directory or name; hf: local model "
                                                            "directory (config.json + weights)"})
    lm: str = field(default="", metadata={"help": "pretrained causal LM (path or name; its tokenizer is used), e.g. "
                                                  "checkpoints/lm of a text-only run; empty builds LM and tokenizer"})
    init_from: str = field(default="", metadata={"help": "a checkpoint directory of an earlier jstip train run whose "
                                                         "weights start this run's init_parts (e.g. a speech encoder "
                                                         "pretrained once and shared by every run); '' for none"})
    init_parts: str = field(default="encoder,projector", metadata={"help": "parts init_from starts: any of encoder, "
                                                                           "projector (with its CTC head), lm, ctc (the "
                                                                           "CTC head alone)"})
    lm_config: str = field(default="", metadata={"help": "config.json or model directory: build that LM with fresh "
                                                         "weights (corpus tokenizer)"})
    lm_type: str = field(default="llama", metadata={"help": "config family when building from sizes: llama or qwen2"})
    lm_hidden: int = field(default=192, metadata={"help": "LM hidden size"})
    lm_layers: int = field(default=3, metadata={"help": "LM decoder layers"})
    lm_heads: int = field(default=4, metadata={"help": "LM attention heads"})
    lm_intermediate: int = field(default=512, metadata={"help": "LM MLP width"})
    attn_implementation: str = field(default="auto", metadata={"help": "LM attention: auto (flash_attention_2 when "
                                                                       "flash-attn and CUDA are there, else sdpa), sdpa, eager"})
    enc_dim: int = field(default=144, metadata={"help": "conv speech encoder width"})
    enc_layers: int = field(default=2, metadata={"help": "conv speech encoder transformer layers"})
    enc_heads: int = field(default=4, metadata={"help": "conv speech encoder attention heads"})
    stack: int = field(default=2, metadata={"help": "encoder frames (20 ms) stacked per LM position: 2 → 40 ms, "
                                                    "4 → 80 ms (the paper's 12.5 Hz)"})
    proj_hidden: int = field(default=384, metadata={"help": "projector (adapter) MLP hidden size"})
    span_encoding: str = field(default="concat", metadata={"help": "concat: a sample's speech spans concatenated and "
                                                                   "encoded once (the paper); slice: the whole utterance "
                                                                   "encoded, spans sliced (their frames hear the text words too)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in the speech encoder"})
    lm_dropout: float = field(default=0.0, metadata={"help": "attention dropout of an LM built from sizes (pretrained "
                                                             "LMs keep theirs; Llama/Qwen2 use 0); on CPU it makes "
                                                             "attention memory quadratic in the row length"})
    ctc_weight: float = field(default=1.0, metadata={"help": "weight of an auxiliary CTC loss of the speech frames on "
                                                           "asr-format transcripts (0 disables); makes small models listen"})
    ctc_units: str = field(default="tokens", metadata={"help": "CTC targets: tokens (the transcript's tokens) or chars "
                                                              "(its letters and word boundaries: generalises across "
                                                              "words when there is little speech)"})
    speech_positions: str = field(default="frames", metadata={"help": "frames: one LM position per `stack` encoder "
                                                                      "frames (the paper); ctc_spikes: each span's positions "
                                                                      "filled from the left at the letter CTC head's spikes, "
                                                                      "then a learned filler (needs ctc_units chars; "
                                                                      "trainer/speech_pooling.py)"})
    speech_pool_input: str = field(default="both", metadata={"help": "ctc_spikes: what a spike position holds: hidden "
                                                                     "(MLP of the encoder frame), posteriors (the CTC "
                                                                     "letter posteriors times the LM's letter embeddings) "
                                                                     "or both (their sum)"})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank on the LM (peft); 0 trains the LM fully"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_targets: str = field(default="all-linear", metadata={"help": "LoRA target modules (all-linear or names)"})
    freeze: str = field(default="auto", metadata={"help": "parts never trained: encoder,projector,lm; auto = a whisper "
                                                      "or hf encoder"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute LM activations in backward "
                                                                          "(per decoder layer)"})
    parallel: str = field(default="auto", metadata={"help": "several processes: ddp (a full replica per device), "
                                                            "fsdp (FSDP2: parameters, gradients and AdamW state "
                                                            "sharded per layer), auto (fsdp when a replica does not "
                                                            "fit the device, see --plan)"})
    reshard_after_forward: bool = field(default=True, metadata={"help": "fsdp: free each layer's gathered weights "
                                                                        "after its forward (gather again in backward)"})
    plan: bool = field(default=False, metadata={"help": "print the memory plan per device (parameters, gradients, "
                                                        "AdamW state, activations) for ddp and fsdp and exit"})
    plan_world_size: int = field(default=0, metadata={"help": "processes the plan assumes (0: WORLD_SIZE, else 1)"})
    device_memory_gb: float = field(default=0.0, metadata={"help": "memory per device in GiB the plan checks against (0: the "
                                                                   "CUDA device's; on CPU unchecked)"})
    cpu_offload: bool = field(default=False, metadata={"help": "fsdp on CUDA: keep shards and AdamW state in host memory"})
    batching: str = field(default="packed", metadata={"help": "packed: samples packed into rows of context tokens, "
                                                              "attention reset per sample (the paper); padded: one per row"})
    context: int = field(default=1024, metadata={"help": "tokens per packed row (the paper: 8192); longer samples are "
                                                         "skipped and counted (both batchings)"})
    batch_size: int = field(default=2, metadata={"help": "packed: rows per micro-batch; padded: samples per micro-batch"})
    batch_tokens: int = field(default=0, metadata={"help": "padded: padded tokens per micro-batch (rows × longest) "
                                                           "instead of batch_size"})
    pool: int = field(default=32, metadata={"help": "batches' worth of samples planned together (sorted or packed)"})
    length_jitter: float = field(default=0.1, metadata={"help": "padded: sort by length x (1 ± this) per epoch so "
                                                                "batches vary (0: exact sort, least padding)"})
    steps: int = field(default=500, metadata={"help": "optimizer steps of stage 2 (ignored when epochs > 0)"})
    epochs: float = field(default=0.0, metadata={"help": "> 0: stage 2 runs this many passes over the samples "
                                                         "(steps derived from the estimated tokens)"})
    stage1_share: float = field(default=0.1, metadata={"help": "stage 1 (adapter only, ASR data) runs for this share "
                                                               "of the ASR tokens (the paper: 0.1); 0 skips it"})
    stage1_lr: float = field(default=1e-3, metadata={"help": "stage 1 peak learning rate (the paper: 1e-4)"})
    stage1_kinds: str = field(default="asr,tts_pair", metadata={"help": "sample kinds stage 1 trains on"})
    stage1_train: str = field(default="projector", metadata={"help": "parts stage 1 trains (the adapter; with "
                                                                     "ctc_weight > 0 also the CTC head)"})
    lr: float = field(default=2e-3, metadata={"help": "stage 2 peak learning rate (the paper: 4e-5 for a pretrained "
                                                      "7B LM; a small LM from scratch needs far more)"})
    lr_schedule: str = field(default="linear", metadata={"help": "decay after warm-up in each stage: linear (the "
                                                                 "paper) or cosine"})
    min_lr_ratio: float = field(default=0.0, metadata={"help": "final learning rate as a share of the peak"})
    warmup_steps: int = field(default=60, metadata={"help": "linear warm-up steps of each stage (at most half of it)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on norms/embeddings)"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm; 0 disables clipping"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    seed: int = field(default=0, metadata={"help": "random seed (init, batching, dropout)"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA if present, else CPU), cpu or cuda"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 autocast on CUDA, fp32 on CPU), bf16 or fp32"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the LM"})
    num_workers: int = field(default=0, metadata={"help": "data loader worker processes, one stream of row groups each "
                                                          "(0: load in the main process)"})
    threads: int = field(default=0, metadata={"help": "CPU threads of torch per process; 0: the cores this process may "
                                                      "use divided by the processes on the node"})
    save_every: int = field(default=0, metadata={"help": "steps between training states (0: only at the end and on Ctrl-C)"})
    keep_states: int = field(default=2, metadata={"help": "training states kept (newest)"})
    resume: str = field(default="", metadata={"help": "'' fresh, auto (newest state in checkpoints/state), or a state dir"})
    export_lm: bool = field(default=False, metadata={"help": "also write the LM and tokenizer as a Hugging Face model "
                                                             "to checkpoints/lm (train.lm of a later run)"})
    peak_tflops: float = field(default=0.0, metadata={"help": "GPU bf16 peak for MFU when the device is not in the table"})
    log_every: int = field(default=10, metadata={"help": "steps between log records (JSONL, plot rows)"})
    loss_window: int = field(default=20, metadata={"help": "steps averaged for first/last loss in metrics"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})
