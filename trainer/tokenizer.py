"""A BPE tokenizer trained on the text the model will see, with the formats' special tokens.

No tokenizer can be downloaded here, so one is trained with the `tokenizers` library on a
bounded sample of the samples' text spans (transcripts as written: case and punctuation kept,
see `manifests/formats.py`), then wrapped as a `PreTrainedTokenizerFast` so that
`save_pretrained` / `from_pretrained` work like for any Hugging Face model. Alternatively a
pretrained LM's own tokenizer is used (`extend_tokenizer` adds what the formats need).

Special tokens get the first ids: `<pad> <bos> <eos> <unk>`, the speech placeholder
`<|audio|>` (its embeddings are replaced by speech frames), the formats' indicator tokens
`<N>` and `<|asr|>`, and the `tagged` extension's `<|speech|>`/`<|/speech|>`. The formats'
`<s>`/`</s>` are the tokenizer's bos/eos (`TokenIds.of`).
"""
from __future__ import annotations

import string
from pathlib import Path
from typing import Iterable

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from manifests import formats
from manifests.errors import JstipError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
AUDIO = "<|audio|>"
SPEECH_OPEN, SPEECH_CLOSE = formats.SPEECH_OPEN, formats.SPEECH_CLOSE
SEGMENT, ASR = formats.SEGMENT, formats.ASR
TAGS = [AUDIO, SEGMENT, ASR, SPEECH_OPEN, SPEECH_CLOSE]  # added to any tokenizer the trainer uses
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, *TAGS]
# Every printable ASCII character is in the alphabet, so transcripts as written (case,
# punctuation, digits) never meet <unk>; other characters join it when the sample holds them.
_ALPHABET = sorted(set(string.ascii_letters + string.digits + string.punctuation))


def build_tokenizer(texts: Iterable[str], vocab_size: int = 1000, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train a Metaspace BPE tokenizer on `texts` and wrap it with the special tokens set."""
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise JstipError("no text to build the tokenizer from: the samples hold no text spans; "
                         "run the interleave stage first")
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
                                   additional_special_tokens=list(TAGS))


def extend_tokenizer(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Give a pretrained LM's tokenizer what the formats need: pad/bos/eos when absent, and the tags.

    Tokens it already has (e.g. its own eos) are kept; the caller resizes the LM's embeddings.
    """
    for attr, token in (("pad_token", PAD), ("bos_token", BOS), ("eos_token", EOS)):
        if getattr(tok, attr) is None:
            tok.add_special_tokens({attr: token})
    tags = [t for t in TAGS if t not in tok.get_vocab()]
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
    """Load a tokenizer saved with `save_pretrained`, checking it has the special tokens."""
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise JstipError(f"cannot load the tokenizer from {path}: {exc}; run the train stage first") from exc
    vocab = tok.get_vocab()
    missing = [t for t in TAGS if t not in vocab]
    if missing or tok.pad_token_id is None or tok.bos_token_id is None or tok.eos_token_id is None:
        raise JstipError(f"tokenizer at {path} lacks special tokens {missing or 'pad/bos/eos'}; it was written "
                         "before the token formats: retrain with the train stage")
    return tok


class TokenIds:
    """The ids of the special tokens, looked up once, and how span text is tokenized.

    `of(name)` maps a token span's name (`manifests.formats.TOKENS`) to its id: `<s>`/`</s>` are
    the tokenizer's bos/eos. `space_prefix` is True for tokenizers where a leading space changes
    the tokens (byte-level BPE of most pretrained LMs): there a text span that continues a
    sentence (after speech or text) is tokenized as " " + text, as it would be inside running
    text. Our Metaspace tokenizer marks every span's first word itself.
    """

    def __init__(self, tok: PreTrainedTokenizerBase) -> None:
        self.pad, self.bos, self.eos = tok.pad_token_id, tok.bos_token_id, tok.eos_token_id
        if None in (self.pad, self.bos, self.eos):
            raise JstipError("tokenizer lacks a pad, bos or eos token; pass it through trainer.tokenizer.extend_tokenizer")
        ids = {t: tok.convert_tokens_to_ids(t) for t in TAGS}
        unknown = [t for t, i in ids.items() if i is None or i == tok.unk_token_id]
        if unknown:
            raise JstipError(f"tokenizer lacks {unknown}; pass it through trainer.tokenizer.extend_tokenizer")
        self.audio, self.segment, self.asr = ids[AUDIO], ids[SEGMENT], ids[ASR]
        self.speech_open, self.speech_close = ids[SPEECH_OPEN], ids[SPEECH_CLOSE]
        self.by_name = {formats.BOS: self.bos, formats.EOS: self.eos, SEGMENT: self.segment, ASR: self.asr,
                        SPEECH_OPEN: self.speech_open, SPEECH_CLOSE: self.speech_close}
        self.targets = frozenset(self.by_name[n] for n in formats.TARGET_TOKENS)
        probe = "x"
        self.space_prefix = tok(probe, add_special_tokens=False)["input_ids"] != \
            tok(" " + probe, add_special_tokens=False)["input_ids"]

    def of(self, name: str) -> int:
        """The id of a token span's token (`<s>`, `</s>`, `<N>`, `<|asr|>`, `<|speech|>`, `<|/speech|>`)."""
        try:
            return self.by_name[name]
        except KeyError:
            raise JstipError(f"unknown special token {name!r}; known: {', '.join(self.by_name)}") from None
