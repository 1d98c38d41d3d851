"""Joint CTC/LM decoding (trainer/ctc_prefix.py, trainer/joint_decode.py)."""
import itertools
import math

import pytest
import torch

from manifests.errors import JstipError
from tests.trainer_samples import flac, tone
from manifests.schema import Utterance
from trainer.ctc_prefix import CTCPrefixScorer, LetterMap
from trainer.data import char_ids, char_targets
from trainer.decode import transcribe
from trainer.joint_decode import joint_beam_search
from trainer.model import SpeechLM, SpeechLMConfig
from trainer.tokenizer import build_tokenizer

SIZES = dict(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=48, lm_layers=1, lm_heads=2,
             lm_intermediate=64, dropout=0.0, max_positions=256, ctc_weight=1.0, ctc_units="chars")


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(["one two three", "alpha beta gamma delta", "Two, one. Three!"] * 5, vocab_size=150)


def _prefix_by_enumeration(logp: torch.Tensor, prefix: list[int]) -> float:
    """P(the collapsed CTC output starts with `prefix`), summed over every frame-level path."""
    T, C = logp.shape
    total = 0.0
    for path in itertools.product(range(C), repeat=T):
        out, prev = [], 0
        for c in path:
            if c and c != prev:
                out.append(c)
            prev = c
        if out[: len(prefix)] == prefix:
            total += math.exp(sum(float(logp[t, c]) for t, c in enumerate(path)))
    return math.log(total)


def test_prefix_and_full_scores_match_enumeration_and_ctc_loss():
    torch.manual_seed(0)
    logp = torch.randn(5, 3, dtype=torch.float64).log_softmax(-1)
    scorer = CTCPrefixScorer(logp)
    for seq in ([1], [1, 2], [2, 2], [1, 2, 1]):
        state = scorer.initial()
        for c in seq:
            state = scorer.extend([state], [c])[0]
        assert state.score == pytest.approx(_prefix_by_enumeration(logp, seq), abs=1e-9)
        loss = torch.nn.functional.ctc_loss(logp[:, None].double(), torch.tensor([seq]), torch.tensor([5]),
                                            torch.tensor([len(seq)]), blank=0, reduction="sum")
        assert scorer.final(state) == pytest.approx(-float(loss), abs=1e-9)


def test_extending_many_prefixes_at_once_equals_one_at_a_time():
    torch.manual_seed(1)
    scorer = CTCPrefixScorer(torch.randn(40, 6).log_softmax(-1))
    a = scorer.extend([scorer.initial()], [3])[0]
    b = scorer.extend([scorer.initial()], [4])[0]
    together = scorer.extend([a, b, a], [3, 3, 5])
    for state, (parent, c) in zip(together, [(a, 3), (b, 3), (a, 5)]):
        alone = scorer.extend([parent], [c])[0]
        assert state.score == pytest.approx(alone.score) and torch.allclose(state.r, alone.r)


def test_next_scores_are_the_extensions_by_every_letter():
    torch.manual_seed(2)
    scorer = CTCPrefixScorer(torch.randn(30, 5).log_softmax(-1))
    for parent in (scorer.initial(), scorer.extend([scorer.initial()], [2])[0]):
        scores = scorer.next_scores(parent)
        assert scores[0] == parent.score
        for c in range(1, 5):
            assert float(scores[c]) == pytest.approx(scorer.extend([parent], [c])[0].score)


def test_letter_map_writes_the_ctc_targets_of_a_tokenized_transcript(tok):
    letters = LetterMap(tok)
    ids = char_ids(tok)
    for text in ["Two, one. Three!", "one  - two", "alpha beta's 40 gamma"]:
        cols, pending, n = [], False, 0
        for t in tok(text, add_special_tokens=False)["input_ids"]:
            more, pending = letters.extend(n, pending, t)
            cols += more
            n += len(more)
        expected = [letters.column[i] for i in char_targets(text, ids)]
        assert cols == expected, text


def _spelled(letters: LetterMap, tok, text: str, frames_per_letter: int = 3) -> torch.Tensor:
    """Letter posteriors that spell `text`: one confident frame per letter, blanks between."""
    cols = [letters.column[i] for i in char_targets(text, char_ids(tok))]
    n_cols = len(letters.classes) + 1
    logp = torch.full((len(cols) * frames_per_letter + 2, n_cols), -12.0)
    logp[:, 0] = -0.01
    for k, c in enumerate(cols):
        t = 1 + k * frames_per_letter
        logp[t, 0], logp[t, c] = -12.0, -0.01
    return logp.log_softmax(-1)


def test_joint_search_writes_what_the_letters_spell_whatever_the_lm_prefers(tok):
    torch.manual_seed(0)
    model = SpeechLM(SpeechLMConfig(**SIZES), tok).eval()
    letters = LetterMap(tok)
    prompt = model.lm.get_input_embeddings()(torch.tensor([tok.bos_token_id]))
    banned = list(tok.all_special_ids)
    with torch.no_grad():
        for text in ["one two", "three alpha"]:
            ids, truncated = joint_beam_search(model, prompt, _spelled(letters, tok, text), letters, 0.9, 4, 16, banned)
            assert not truncated
            written = tok.decode(ids, skip_special_tokens=True)
            assert char_targets(written, char_ids(tok)) == char_targets(text, char_ids(tok)), written
        # the untrained LM alone (weight 0) writes something else
        ids, _ = joint_beam_search(model, prompt, _spelled(letters, tok, "one two"), letters, 0.0, 4, 16, banned)
        assert char_targets(tok.decode(ids, skip_special_tokens=True), char_ids(tok)) != \
            char_targets("one two", char_ids(tok))


def test_transcribe_decodes_jointly_and_refuses_a_model_without_the_letter_head(tok, tmp_path):
    torch.manual_seed(0)
    audio = tmp_path / "u0.flac"
    audio.write_bytes(flac(tone(0.8, 440, 0.05, 0)))
    utts = [Utterance("u0", str(audio), 0.0, 0.8, 16000, "s", "one two", "one two", "c", "test")]
    model = SpeechLM(SpeechLMConfig(**SIZES), tok)
    result = transcribe(model, tok, utts, max_new_tokens=6, progress=False, num_beams=2, ctc_weight=0.5)
    assert [h.utt_id for h in result.hypotheses] == ["u0"] and isinstance(result.hypotheses[0].hypothesis, str)
    plain = SpeechLM(SpeechLMConfig(**{**SIZES, "ctc_weight": 0.0}), tok)
    with pytest.raises(JstipError, match="letter CTC head"):
        transcribe(plain, tok, utts, max_new_tokens=6, progress=False, num_beams=2, ctc_weight=0.5)
    with pytest.raises(JstipError, match="ctc_weight"):
        transcribe(model, tok, utts, max_new_tokens=6, progress=False, ctc_weight=1.5)
