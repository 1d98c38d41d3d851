"""Training and evaluation of a speech-LLM on JSTIP samples.

features (log-mel, span→frame arithmetic) → tokenizer (BPE + modality tags) → data (audio,
layout, labels) → shards + batching (row groups per rank, bucketing, resumable cursor) →
encoders + model (conv or Whisper encoder → projector → any causal LM, LoRA, freezing) →
loop (AdamW, warm-up + cosine, accumulation, bf16, DDP) with checkpoint (safetensors, exact
resume) and throughput (tokens/s, MFU) → decode (greedy/beam) → metrics (WER, entity error).
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
