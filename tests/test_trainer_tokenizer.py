"""The corpus-trained BPE tokenizer and the extension of a pretrained LM's tokenizer."""
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from manifests.errors import JstipError
from trainer.tokenizer import AUDIO, SPECIAL_TOKENS, TokenIds, build_tokenizer, extend_tokenizer, load_tokenizer

TEXTS = ["the patient takes metformin daily", "we will meet at the station", "a biopsy was ordered"] * 5


def test_build_round_trips_text_and_reserves_special_ids(tmp_path):
    tok = build_tokenizer(TEXTS, vocab_size=200)
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    ids = tok("the unseen zebra", add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and tok.decode(ids) == "the unseen zebra"
    # spans tokenized separately and concatenated decode to the words joined by spaces
    joined = tok("we will", add_special_tokens=False)["input_ids"] + tok("meet", add_special_tokens=False)["input_ids"]
    assert tok.decode(joined) == "we will meet"
    tok.save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again("metformin", add_special_tokens=False)["input_ids"] == tok("metformin", add_special_tokens=False)["input_ids"]
    assert TokenIds(again).audio == tok.convert_tokens_to_ids(AUDIO)


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
    assert ids.eos == 2 and len({ids.pad, ids.bos, ids.eos, ids.speech_open, ids.speech_close, ids.audio}) == 6
    assert tok("hello <|audio|> world", add_special_tokens=False)["input_ids"] == [0, ids.audio, 1]
    tok.save_pretrained(tmp_path)
    assert TokenIds(load_tokenizer(tmp_path)).audio == ids.audio
