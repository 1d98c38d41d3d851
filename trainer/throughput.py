"""Throughput figures of a run: tokens/s, audio seconds/s, padding share and model FLOPs utilization.

MFU counts the LM only (the issue's target is MFU of the LM part), the way PaLM/nanoGPT do:
per token, 6·N for forward + backward through N matmul weights (4·N when the LM's weights are
frozen or LoRA-adapted: no weight gradients), plus 12·L·d·T for attention over a sequence of T
positions (2·L·d·T each for scores and values forward, ×3 with backward). N excludes the input embedding (a lookup) and
includes the output projection even when tied. Real (non-pad) positions count, so padding lowers
MFU as it should. The peak is the dense bf16 figure of the GPU (a table by name, or
`peak_tflops`); on CPU MFU is not reported.
`mfu_model` adds the speech side: per encoder frame (20 ms) 6·N_enc when the encoder trains, 2·N_enc
when it is frozen (forward only), and the adapter's 6·N or 2·N per speech position; the encoder's
own attention over a span is left out (spans are seconds long: a few % of its FLOPs). Anchors for
the LM figure: nanochat 50.9% (1.9B dense LM, 8 × H100), OpusLM 28-32% (the one speech-LM figure
published).
"""
from __future__ import annotations

from torch import nn

# dense bf16 tensor-core peaks, FLOP/s (vendor datasheets; SXM parts unless named)
PEAK_BF16 = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "GH200": 989e12, "A100": 312e12,
             "L40S": 362e12, "L4": 121e12, "A10": 125e12, "RTX 4090": 165e12, "RTX 3090": 71e12, "V100": 125e12}


def peak_flops(device_name: str, override_tflops: float = 0.0) -> float | None:
    """Peak bf16 FLOP/s of one device by its `torch.cuda.get_device_name`, or the override."""
    if override_tflops > 0:
        return override_tflops * 1e12
    for key in sorted(PEAK_BF16, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if key in device_name:
            return PEAK_BF16[key]
    return None


def lm_flops_per_token(lm: nn.Module, seq_len: float) -> float:
    """Training FLOPs per token of a transformers causal LM (see the module docstring)."""
    emb = _matrix(lm.get_input_embeddings())
    head = lm.get_output_embeddings()
    params = {id(p): p for p in lm.parameters()}
    n = sum(p.numel() for p in params.values()) - emb.numel()
    if head is not None and _matrix(head) is emb:  # tied: the head still multiplies
        n += emb.numel()
    trainable_base = any(p.requires_grad for name, p in lm.named_parameters() if "lora_" not in name)
    cfg = lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config
    layers, width = cfg.num_hidden_layers, cfg.hidden_size
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or width // heads
    attention = 12 * layers * heads * head_dim * seq_len
    return (6 if trainable_base else 4) * n + attention


def _matrix(module: nn.Module):
    """An embedding's (or output projection's) weight; under peft's trainable tokens the base layer's, as
    the wrapper's `.weight` merges the token rows in (which FSDP's sharded tensors cannot outside forward)."""
    adapter = getattr(module, "token_adapter", None)
    return adapter.get_base_layer().weight if adapter is not None else module.weight


def speech_flops_per_frame(model: nn.Module) -> float:
    """Training FLOPs of encoder + adapter per encoder frame (see the module docstring)."""
    def cost(module: nn.Module, per: float = 1.0) -> float:
        params = {id(p): p for p in module.parameters()}.values()
        trained = any(p.requires_grad for p in params)
        return (6 if trained else 2) * sum(p.numel() for p in params) * per

    return cost(model.encoder) + cost(model.projector, 1.0 / model.spec.stack)
