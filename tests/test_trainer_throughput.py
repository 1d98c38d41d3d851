"""MFU accounting of the whole model: encoder and adapter FLOPs per frame, trained (6·N) or frozen (2·N)."""
from trainer.model import SpeechLM, SpeechLMConfig
from trainer.throughput import lm_flops_per_token, peak_flops, speech_flops_per_frame
from trainer.tokenizer import build_tokenizer


def test_speech_flops_follow_what_trains():
    tok = build_tokenizer(["alpha beta gamma delta"] * 5, vocab_size=150)
    model = SpeechLM(SpeechLMConfig(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=64, lm_layers=2,
                                    lm_heads=2, lm_intermediate=128, stack=4), tok)
    n_enc = sum(p.numel() for p in model.encoder.parameters())
    n_proj = sum(p.numel() for p in model.projector.parameters())
    assert speech_flops_per_frame(model) == 6 * n_enc + 6 * n_proj / 4
    model.set_trainable({"projector"})  # stage 1: the encoder runs forward only
    assert speech_flops_per_frame(model) == 2 * n_enc + 6 * n_proj / 4
    lm = model.base_lm()
    trained = lm_flops_per_token(lm, 100)
    model.set_trainable({"projector", "lm"})
    assert lm_flops_per_token(lm, 100) > trained  # 6·N instead of 4·N once the LM's weights train
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12 and peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("some CPU") is None and peak_flops("x", 100) == 100e12
