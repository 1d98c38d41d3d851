"""Training and evaluation of a speech-LLM on JSTIP samples.

config + run (one call from a `TrainConfig` to a trained run) → features (log-mel, span→frame
arithmetic) → tokenizer (BPE + the formats' special tokens) → render (token formats → ids,
labels, speech frame ranges) → data (audio, concatenated or sliced speech spans, padded or packed
rows) → shards + batching (row groups per rank, columnar scan, pools planned lazily, worker
streams with an exact cursor) → encoders + attention + model (conv or Whisper encoder → projector
→ any causal LM, varlen attention on packed rows, LoRA, freezing) → schedule + loop (two stages,
AdamW, linear decay, accumulation, bf16, DDP, Ctrl-C) with checkpoint (safetensors, exact resume,
LM export) and throughput (tokens/s, MFU) → decode (greedy/beam).
The package imports nothing heavy itself (`trainer.config` is torch-free); its modules import torch.
"""
