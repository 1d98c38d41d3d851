"""The corpus-trained BPE tokenizer (cased text, the formats' special tokens) and the extension of a pretrained one."""
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from manifests import formats
from manifests.errors import JstipError
from trainer.tokenizer import AUDIO, SPECIAL_TOKENS, TokenIds, build_tokenizer, extend_tokenizer, load_tokenizer

TEXTS = ["The patient takes Metformin daily.", "We will meet at the station, OK?", "A biopsy was ordered!"] * 5


def test_build_round_trips_cased_text_and_reserves_special_ids(tmp_path):
    tok = build_tokenizer(TEXTS, vocab_size=200)
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    # case, punctuation and digits are in the alphabet even when the sample lacks them
    for text in ("The unseen Zebra, 42%!", "Dr. QUINN's (x) [y] {z}"):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids and tok.decode(ids) == text
    # spans tokenized separately and concatenated decode to the words joined by spaces
    joined = tok("We will", add_special_tokens=False)["input_ids"] + tok("meet.", add_special_tokens=False)["input_ids"]
    assert tok.decode(joined) == "We will meet."
    tok.save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again("Metformin", add_special_tokens=False)["input_ids"] == tok("Metformin", add_special_tokens=False)["input_ids"]
    assert TokenIds(again).audio == tok.convert_tokens_to_ids(AUDIO)


def test_format_token_names_map_to_ids():
    ids = TokenIds(build_tokenizer(TEXTS, vocab_size=200))
    assert ids.of(formats.BOS) == ids.bos and ids.of(formats.EOS) == ids.eos
    assert len({ids.of(name) for name in formats.TOKENS} | {ids.audio, ids.pad}) == len(formats.TOKENS) + 2
    assert ids.targets == {ids.eos} and not ids.space_prefix  # Metaspace marks each span's first word itself
    with pytest.raises(JstipError, match="unknown special token"):
        ids.of("<|nope|>")


def test_build_rejects_empty_text_and_tiny_vocab():
    with pytest.raises(JstipError, match="no text"):
        build_tokenizer(["", "  "])
    with pytest.raises(JstipError, match="vocab_size"):
        build_tokenizer(TEXTS, vocab_size=10)


def test_extend_adds_tags_and_missing_specials_to_a_pretrained_tokenizer(tmp_path):
    raw = Tokenizer(models.WordLevel({"hello": 0, "world": 1, "</s>": 2, "[UNK]": 3}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="</s>", unk_token="[UNK]")
    extend_tokenizer(tok)
    ids = TokenIds(tok)
    assert ids.eos == 2 and len({ids.pad, ids.bos, ids.eos, ids.audio, ids.segment, ids.asr, ids.speech_open,
                                 ids.speech_close}) == 8
    assert tok("hello <|audio|> <N> world", add_special_tokens=False)["input_ids"] == [0, ids.audio, ids.segment, 1]
    tok.save_pretrained(tmp_path)
    assert TokenIds(load_tokenizer(tmp_path)).asr == ids.asr


def test_a_tokenizer_from_before_the_formats_is_refused(tmp_path):
    raw = Tokenizer(models.WordLevel({"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3, "<|audio|>": 4}, unk_token="<unk>"))
    old = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                  unk_token="<unk>")
    old.save_pretrained(tmp_path)
    with pytest.raises(JstipError, match="before the token formats"):
        load_tokenizer(tmp_path)


def test_fast_batch_tokenization_matches_the_tokenizer_call():
    from trainer.render import tokenize_pieces

    tok = build_tokenizer(TEXTS, vocab_size=200)
    pieces = ["The patient", " takes Metformin", "<|asr|> daily.", "", "Zebra 42%!"]
    assert tokenize_pieces(tok, pieces) == [tok(p, add_special_tokens=False)["input_ids"] for p in pieces]
