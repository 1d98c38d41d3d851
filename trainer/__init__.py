"""Training and evaluation of a speech-LLM on JSTIP samples.

features (log-mel, span→frame arithmetic) → tokenizer (BPE + the formats' special tokens) →
render (token formats → ids, labels, speech frame ranges) → data (audio, concatenated or sliced
speech spans, padded or packed rows) → shards + batching (row groups per rank, columnar scan,
pools planned lazily, worker streams with an exact cursor) → encoders + attention + model (conv
or Whisper encoder → projector → any causal LM, varlen attention on packed rows, LoRA, freezing)
→ schedule + loop (two stages, AdamW, linear decay, accumulation, bf16, DDP, Ctrl-C) with
checkpoint (safetensors, exact resume, LM export) and throughput (tokens/s, MFU) → decode
(greedy/beam) → metrics (WER, entity error).
Imports torch; the stage wrappers live in `pipeline/stage_train.py` and `pipeline/stage_evaluate.py`.
"""
from .checkpoint import load_checkpoint, save_checkpoint
from .features import FrameSpec, LogMel, encoded_frames, mel_frames, span_frames
from .metrics import entity_error_rate, wer
from .model import SpeechLM, SpeechLMConfig
from .tokenizer import build_tokenizer, load_tokenizer

__all__ = ["FrameSpec", "LogMel", "SpeechLM", "SpeechLMConfig", "build_tokenizer", "encoded_frames",
           "entity_error_rate", "load_checkpoint", "load_tokenizer", "mel_frames", "save_checkpoint", "span_frames",
           "wer"]
