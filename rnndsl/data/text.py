"""Text to integer sequences: tokenizer, vocabulary, padding, labelled files.

Conventions (as Keras's TextVectorization): id 0 is padding, id 1 stands for
out-of-vocabulary words, real words start at 2, most frequent first.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from rnndsl.errors import DataError, clip

from .options import fits_memory, whole

__all__ = ["tokenize", "Vocabulary", "pad_sequences", "load_labelled_text", "read_utf8", "TextEncoder",
           "TOKENIZER"]

_TOKEN = re.compile(r"[^\W_]+")  # runs of letters/digits (any script); "_" splits too


# The tokenizer's name as checkpoints record it: a checkpoint names the tokenizer its
# vocabulary was built with, and one naming another is refused rather than misread.
TOKENIZER = "words"


def tokenize(text: str) -> list[str]:
    """Lower-case ``text`` and split it on everything that is not a letter or digit."""
    return _TOKEN.findall(text.lower())


def read_utf8(path, what: str = "text file") -> str:
    """The whole of a UTF-8 file as a str (a leading byte-order mark dropped); a byte that
    is not UTF-8 is a DataError naming ``path:line:column`` (the column counts bytes)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DataError(f"cannot read {what} {path}: {e.strerror or e}") from None
    fits_memory(f"{what} {path}", size, 1)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {what} {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(f"{path}:{line}:{column}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save the "
                        f"{what} as UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text


class Vocabulary:
    """word <-> id. id 0 = ``pad_token``, id 1 = ``oov_token``, then the words."""

    PAD = 0
    OOV = 1

    def __init__(self, words: Iterable[str] = (), pad_token: str = "<pad>", oov_token: str = "<oov>"):
        self.id_to_word: list[str] = [pad_token, oov_token]
        self.word_to_id: dict[str, int] = {pad_token: 0, oov_token: 1}
        for w in words:
            if w not in self.word_to_id:
                self.word_to_id[w] = len(self.id_to_word)
                self.id_to_word.append(w)

    @classmethod
    def build(cls, texts: Iterable, max_size: int | None = None, min_count: int = 1,
              tokenizer=tokenize, **kw) -> "Vocabulary":
        """From texts (strings, or token lists): words by decreasing count, ties in
        order of first appearance; ``max_size`` caps the total size including the
        two reserved ids (like Keras's max_tokens)."""
        if max_size is not None and max_size < 2:
            raise DataError(f"max_size must be >= 2 (padding and OOV ids), got {max_size}")
        counts: Counter = Counter()
        for t in texts:
            counts.update(tokenizer(t) if isinstance(t, str) else t)
        # Counter.most_common is stable for ties, i.e. first-seen order.
        words = [w for w, c in counts.most_common() if c >= min_count]
        if max_size is not None:
            words = words[: max_size - 2]
        return cls(words, **kw)

    def __len__(self) -> int:
        return len(self.id_to_word)

    def __contains__(self, word) -> bool:
        return word in self.word_to_id

    def __getitem__(self, word: str) -> int:
        return self.word_to_id.get(word, self.OOV)

    @property
    def pad_token(self) -> str:
        return self.id_to_word[0]

    @property
    def oov_token(self) -> str:
        return self.id_to_word[1]

    def lookup(self, word: str) -> int:
        """id of ``word`` (OOV id 1 when unknown)."""
        return self.word_to_id.get(word, self.OOV)

    def word(self, i: int) -> str:
        """word of id ``i``."""
        if not 0 <= i < len(self.id_to_word):
            raise DataError(f"id {i} is out of range for a vocabulary of {len(self)} entries")
        return self.id_to_word[i]

    def encode(self, text, tokenizer=tokenize) -> list[int]:
        """ids of a text (tokenized) or of a token list."""
        tokens = tokenizer(text) if isinstance(text, str) else text
        get = self.word_to_id.get
        return [get(t, self.OOV) for t in tokens]

    def decode(self, ids: Iterable[int], skip_padding: bool = True) -> list[str]:
        """words of ids; padding ids are dropped unless skip_padding=False."""
        return [self.word(int(i)) for i in ids if not (skip_padding and int(i) == self.PAD)]

    def to_list(self) -> list[str]:
        """All entries in id order (JSON-able); Vocabulary.from_list inverts it."""
        return list(self.id_to_word)

    @classmethod
    def from_list(cls, entries: Sequence[str]) -> "Vocabulary":
        if len(entries) < 2:
            raise DataError("a vocabulary list needs at least the padding and OOV entries")
        if len(set(entries)) != len(entries):
            raise DataError("a vocabulary list must not repeat entries")
        return cls(entries[2:], pad_token=entries[0], oov_token=entries[1])

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} entries)"


def pad_sequences(sequences, maxlen: int | None = None, padding: str = "pre",
                  truncating: str = "pre", value: int = 0, dtype=np.int32) -> np.ndarray:
    """Keras's pad_sequences: a (N, maxlen) array; maxlen defaults to the longest.
    "pre" pads/truncates at the start, "post" at the end."""
    for name, v in (("padding", padding), ("truncating", truncating)):
        if v not in ("pre", "post"):
            raise DataError(f"{name} must be 'pre' or 'post', got {v!r}")
    seqs = [list(s) for s in sequences]
    if maxlen is None:
        maxlen = max((len(s) for s in seqs), default=0)
    if maxlen < 0:
        raise DataError(f"maxlen must be >= 0, got {maxlen}")
    out = np.full((len(seqs), maxlen), value, dtype=dtype)
    for i, s in enumerate(seqs):
        if len(s) > maxlen:
            s = s[-maxlen:] if truncating == "pre" and maxlen else s[:maxlen]
        if not s:
            continue
        if padding == "post":
            out[i, : len(s)] = s
        else:
            out[i, maxlen - len(s):] = s
    return out


def _label_order(names: set[str]) -> list[str]:
    # Numeric labels sort as numbers ("2" before "10"), others alphabetically.
    try:
        return sorted(names, key=lambda s: float(s))
    except ValueError:
        return sorted(names)


def check_text_options(max_words=None, maxlen=None, padding="pre", truncating="pre", labels=None) -> None:
    """The options every labelled-text loader takes, each a DataError naming it when wrong."""
    if maxlen is not None:
        whole("maxlen", maxlen, 1)
    if max_words is not None:
        whole("max_words", max_words, 2)
    if labels is not None and (not isinstance(labels, (list, tuple)) or not labels
                               or not all(isinstance(s, str) for s in labels)):
        raise DataError(f"labels must be a list of label strings, got {str(labels)[:60]!r}")
    if labels is not None and len(set(labels)) != len(labels):
        raise DataError(f"labels must not repeat a name, got {str(list(labels))[:60]}")
    for name, v in (("padding", padding), ("truncating", truncating)):
        if v not in ("pre", "post"):
            raise DataError(f"{name} must be 'pre' or 'post', got {str(v)[:40]!r}")


def labelled_ids(where: str, label_strs: list[str] | None, token_lists: list[list[str]],
                 vocab: "Vocabulary | None" = None, max_words: int | None = None, maxlen: int | None = None,
                 padding: str = "pre", truncating: str = "pre", labels: Sequence[str] | None = None,
                 item: str = "text"):
    """Token lists and their label strings (None: no labels) -> ``(x (N, maxlen) int32,
    y (N,) int64 or None, vocab, label_names or None)``, as every text loader returns them.
    ``where`` names the source in errors, ``item`` what holds one text."""
    if not token_lists:
        raise DataError(f"{where} holds no texts")
    label_names = None
    y = None
    if label_strs is not None:
        if labels is None:
            label_names = _label_order(set(label_strs))
        else:
            label_names = [str(s) for s in labels]
            unknown = sorted(set(label_strs) - set(label_names))
            if unknown:
                raise DataError(f"{where}: label {clip(unknown[0])!r} is not one of {label_names}")
        label_id = {s: i for i, s in enumerate(label_names)}
        y = np.array([label_id[s] for s in label_strs], dtype=np.int64)
    if vocab is None:
        vocab = Vocabulary.build(token_lists, max_size=max_words)
    steps = maxlen if maxlen is not None else max((len(t) for t in token_lists), default=0)
    if steps == 0:
        raise DataError(f"{where}: no {item} has a word to read (every text is empty after tokenising)")
    fits_memory(f"{where}: {len(token_lists)} texts of {steps} tokens", len(token_lists) * steps, 4)
    x = pad_sequences([vocab.encode(t) for t in token_lists], maxlen=steps, padding=padding,
                      truncating=truncating)
    return x, y, vocab, label_names


def load_labelled_text(path, vocab: Vocabulary | None = None, max_words: int | None = None,
                       maxlen: int | None = None, padding: str = "pre", truncating: str = "pre",
                       labels: Sequence[str] | None = None):
    """A file of ``label<TAB>text`` lines -> ``(x (N, maxlen) int32, y (N,) int64,
    vocab, label_names)``. A new vocabulary (capped at ``max_words`` entries) is
    built when ``vocab`` is None; label ids index ``label_names`` (given as
    ``labels``, else the sorted distinct labels). Blank lines are skipped."""
    path = Path(path)
    check_text_options(max_words, maxlen, padding, truncating, labels)
    if not path.is_file():
        raise DataError(f"text file not found: {path}")
    label_strs: list[str] = []
    token_lists: list[list[str]] = []
    for lineno, line in enumerate(read_utf8(path).split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        label, tab, text = line.partition("\t")
        label = label.strip()
        if not tab:
            raise DataError(f"{path}:{lineno}: expected 'label<TAB>text', found no tab")
        if not label:
            raise DataError(f"{path}:{lineno}: empty label")
        label_strs.append(label)
        token_lists.append(tokenize(text))
    if not label_strs:
        raise DataError(f"{path} holds no labelled lines")
    return labelled_ids(str(path), label_strs, token_lists, vocab, max_words, maxlen, padding, truncating, labels,
                        item="line")


class TextEncoder:
    """What turns raw text into the ids a model was trained on, and its label names back:
    the vocabulary, the tokenizer (``tokenize``: lower-cased runs of letters and digits),
    the sequence length and the padding and truncating sides the training data had, and
    the name of the model input the ids feed. Unknown words get the OOV id 1, padding is
    id 0, and a text with no word is all padding, as in training.

    ``to_config()`` is plain JSON (checkpoints store it); ``from_config`` checks it."""

    def __init__(self, vocab: Vocabulary, maxlen: int, padding: str = "pre", truncating: str = "pre",
                 labels: Sequence[str] | None = None, input: str | None = None):
        check_text_options(None, maxlen, padding, truncating, labels)
        self.vocab = vocab
        self.maxlen = int(maxlen)
        self.padding, self.truncating = padding, truncating
        self.labels = None if labels is None else [str(s) for s in labels]
        self.input = input

    def encode(self, texts) -> np.ndarray:
        """(N, maxlen) int32 ids of N texts, padded and truncated as training did."""
        if isinstance(texts, str):
            raise DataError("give a list of texts, not one string (e.g. [\"a new sentence\"])")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise DataError(f"text {i} is a {type(t).__name__}, not a string")
        fits_memory(f"{len(texts)} texts of {self.maxlen} tokens", len(texts) * self.maxlen, 4)
        return pad_sequences([self.vocab.encode(t) for t in texts], maxlen=self.maxlen, padding=self.padding,
                             truncating=self.truncating)

    def to_config(self) -> dict:
        return {"tokenizer": TOKENIZER, "lowercase": True, "vocabulary": self.vocab.to_list(),
                "maxlen": self.maxlen, "padding": self.padding, "truncating": self.truncating,
                "labels": self.labels, "input": self.input}

    @classmethod
    def from_config(cls, cfg) -> "TextEncoder":
        """The encoder ``to_config`` described; a DataError names what is wrong in it."""
        if not isinstance(cfg, dict):
            raise DataError(f"the text settings must be an object, got {type(cfg).__name__}")
        tok = cfg.get("tokenizer")
        if tok != TOKENIZER or cfg.get("lowercase", True) is not True:
            raise DataError(f"the text settings name tokenizer {str(tok)[:40]!r} (lowercase="
                            f"{str(cfg.get('lowercase'))[:10]}); this rnndsl knows only {TOKENIZER!r}, lower-cased")
        words = cfg.get("vocabulary")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise DataError("the text settings' vocabulary must be a list of strings")
        # ids 0 and 1 are padding and OOV, named so that no text reads as them; every other
        # entry a word the tokenizer makes (else an edited list maps words to the wrong ids)
        for w in words[:2]:
            if tokenize(w) == [w]:
                raise DataError(f"the text settings' vocabulary starts with {clip(w)!r}, a word a text could "
                                "hold, where the padding and OOV entries go")
        for w in words[2:]:
            if tokenize(w) != [w]:
                raise DataError(f"the text settings' vocabulary holds {clip(w)!r}, which the {TOKENIZER} "
                                "tokenizer never gives")
        maxlen = cfg.get("maxlen")
        if isinstance(maxlen, bool) or not isinstance(maxlen, int):
            raise DataError(f"the text settings' maxlen must be a whole number >= 1, got {str(maxlen)[:40]!r}")
        labels, name = cfg.get("labels"), cfg.get("input")
        if name is not None and not isinstance(name, str):
            raise DataError(f"the text settings' input must be an input's name, got {type(name).__name__}")
        return cls(Vocabulary.from_list(words), maxlen, cfg.get("padding", "pre"), cfg.get("truncating", "pre"),
                   labels, name)

    def __repr__(self) -> str:
        return (f"TextEncoder({len(self.vocab)} words, maxlen={self.maxlen}, padding={self.padding!r}, "
                f"truncating={self.truncating!r}, labels={self.labels})")
