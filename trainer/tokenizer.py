"""A small BPE tokenizer trained offline on the corpus text, with the speech modality tags.

No tokenizer can be downloaded here, so one is trained with the `tokenizers` library on the
normalized transcripts and domain text, then wrapped as a `PreTrainedTokenizerFast` so that
`save_pretrained` / `from_pretrained` work like for any Hugging Face model. Special tokens
get the first ids: `<pad> <bos> <eos> <unk>` and the modality tags `<|speech|>`,
`<|/speech|>` and the placeholder `<|audio|>` whose embeddings are replaced by speech frames.
"""
from __future__ import annotations

import string
from pathlib import Path
from typing import Iterable

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from manifests.errors import JstipError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPEECH_OPEN, SPEECH_CLOSE, AUDIO = "<|speech|>", "<|/speech|>", "<|audio|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, SPEECH_OPEN, SPEECH_CLOSE, AUDIO]
_ALPHABET = list(string.ascii_lowercase + string.digits + "'-.,?!")


def build_tokenizer(texts: Iterable[str], vocab_size: int = 1000, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train a Metaspace BPE tokenizer on `texts` and wrap it with the special tokens set."""
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise JstipError("no text to build the tokenizer from: utterances, texts and samples are all empty; "
                         "run the prepare and interleave stages first")
    if vocab_size < len(SPECIAL_TOKENS) + len(_ALPHABET) + 1:
        raise JstipError(f"vocab_size {vocab_size} is too small; use at least {len(SPECIAL_TOKENS) + len(_ALPHABET) + 1}")
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=_ALPHABET + ["▁"], show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return wrap_tokenizer(tok)


def wrap_tokenizer(tok: Tokenizer) -> PreTrainedTokenizerFast:
    """A `PreTrainedTokenizerFast` around a raw tokenizer that already holds `SPECIAL_TOKENS`."""
    missing = [t for t in SPECIAL_TOKENS if tok.token_to_id(t) is None]
    if missing:
        raise JstipError(f"tokenizer lacks special tokens {missing}; rebuild it with trainer.tokenizer.build_tokenizer")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
                                   additional_special_tokens=[SPEECH_OPEN, SPEECH_CLOSE, AUDIO])


def extend_tokenizer(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Give a pretrained LM's tokenizer what the layout needs: pad/bos/eos when absent, and the tags.

    Tokens it already has (e.g. its own eos) are kept; the caller resizes the LM's embeddings.
    """
    for attr, token in (("pad_token", PAD), ("bos_token", BOS), ("eos_token", EOS)):
        if getattr(tok, attr) is None:
            tok.add_special_tokens({attr: token})
    tags = [t for t in (SPEECH_OPEN, SPEECH_CLOSE, AUDIO) if t not in tok.get_vocab()]
    if tags:
        tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in tags], special_tokens=True)
    return tok


def load_pretrained_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """The tokenizer stored with a pretrained LM (`from_pretrained(path)`)."""
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise JstipError(f"cannot load the tokenizer of LM {path!r}: {exc}; give a local model directory "
                         "that holds its tokenizer, or lm='' to build one") from exc


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer saved with `save_pretrained`, checking it has the modality tags."""
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise JstipError(f"cannot load the tokenizer from {path}: {exc}; run the train stage first") from exc
    vocab = tok.get_vocab()
    missing = [t for t in (SPEECH_OPEN, SPEECH_CLOSE, AUDIO) if t not in vocab]
    if missing or tok.pad_token_id is None or tok.bos_token_id is None or tok.eos_token_id is None:
        raise JstipError(f"tokenizer at {path} lacks special tokens {missing or 'pad/bos/eos'}; "
                         "retrain with the train stage")
    return tok


class TokenIds:
    """The ids of the special tokens, looked up once."""

    def __init__(self, tok: PreTrainedTokenizerBase) -> None:
        ids = {t: tok.convert_tokens_to_ids(t) for t in (SPEECH_OPEN, SPEECH_CLOSE, AUDIO)}
        self.pad, self.bos, self.eos = tok.pad_token_id, tok.bos_token_id, tok.eos_token_id
        if None in (self.pad, self.bos, self.eos):
            raise JstipError("tokenizer lacks a pad, bos or eos token; pass it through trainer.tokenizer.extend_tokenizer")
        self.speech_open, self.speech_close, self.audio = ids[SPEECH_OPEN], ids[SPEECH_CLOSE], ids[AUDIO]
