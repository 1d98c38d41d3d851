"""Training and evaluation of a tiny speech-LLM on JSTIP samples.

features (log-mel, span→frame arithmetic) → tokenizer (BPE + modality tags) → data (layout,
labels, batches) → model (encoder → projector → causal LM) → loop (AdamW, warm-up + cosine)
→ decode (batched greedy) → metrics (WER, entity error rate). Imports torch; the stage
wrappers live in `pipeline/stage_train.py` and `pipeline/stage_evaluate.py`.
"""
from .features import FrameSpec, LogMel, encoded_frames, mel_frames, span_frames
from .metrics import entity_error_rate, wer
from .model import SpeechLM, SpeechLMConfig, load_checkpoint, save_checkpoint
from .tokenizer import build_tokenizer, load_tokenizer

__all__ = ["FrameSpec", "LogMel", "SpeechLM", "SpeechLMConfig", "build_tokenizer", "encoded_frames",
           "entity_error_rate", "load_checkpoint", "load_tokenizer", "mel_frames", "save_checkpoint", "span_frames",
           "wer"]
