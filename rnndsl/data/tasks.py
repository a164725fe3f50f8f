"""Seeded synthetic tasks, all returning NumPy arrays (no network needed).

- ``addition``: Keras's "learn to add" example, as token ids.
- ``copy_task`` / ``reverse_task``: output the input sequence (reversed).
- ``sine``: noisy sine windows -> next value; ``sine_series`` plus
  ``stateful_batches`` for stateful training on one long series.
"""

from __future__ import annotations

import numpy as np

from rnndsl.errors import DataError

from .options import check_options, fits_memory, whole

__all__ = [
    "ADDITION_CHARS",
    "addition",
    "encode_chars",
    "decode_chars",
    "copy_task",
    "reverse_task",
    "start_token",
    "sine",
    "sine_series",
    "stateful_batches",
]

# Keras's CharacterTable sorts its characters: " +0123456789", so id 0 is the
# space that pads queries and answers (and doubles as the padding id).
ADDITION_CHARS = "".join(sorted("0123456789+ "))


def encode_chars(text: str, chars: str = ADDITION_CHARS) -> np.ndarray:
    """ids of the characters of ``text`` in ``chars``."""
    index = {c: i for i, c in enumerate(chars)}
    try:
        return np.array([index[c] for c in text], dtype=np.int32)
    except KeyError as e:
        raise DataError(f"character {e.args[0]!r} is not in the table {chars!r}") from None


def decode_chars(ids, chars: str = ADDITION_CHARS) -> str:
    """The string of ``ids`` (e.g. a row of addition's x or y)."""
    return "".join(chars[int(i)] for i in np.asarray(ids).ravel())


def addition(n: int, digits: int = 2, reverse: bool = True, seed: int = 0):
    """``n`` distinct questions "a+b" with a, b of 1..``digits`` digits (the digit
    count drawn uniformly, as Keras's example; a+b and b+a count as the same).

    Returns ``(x (n, 2*digits+1), y (n, digits+1), chars)``: int32 ids into
    ``chars`` = ADDITION_CHARS; queries and answers are right-padded with
    spaces, and the whole padded query is reversed when ``reverse``.
    """
    check_options("addition", n=n, digits=digits, seed=seed)
    fits_memory(f"addition(n={n}, digits={digits})", n, 8 * (3 * digits + 2))
    m = 10 ** digits
    n_unique = m * (m + 1) // 2
    if n > n_unique:
        raise DataError(f"only {n_unique} distinct questions exist with {digits} digit(s); asked for {n}")
    rng = np.random.default_rng(seed)
    pairs: list[tuple[int, int]] = []
    if 2 * n > n_unique:
        # Near the limit rejection sampling would take very long to find the
        # last rare pairs: draw uniformly from all unordered pairs instead.
        a, b = np.triu_indices(m)
        pick = rng.choice(n_unique, size=n, replace=False)
        swap = rng.random(n) < 0.5
        for k, s in zip(pick, swap):
            pairs.append((int(b[k]), int(a[k])) if s else (int(a[k]), int(b[k])))
    else:
        seen: set[tuple[int, int]] = set()
        powers = 10 ** np.arange(digits)
        while len(pairs) < n:
            size = 2 * (n - len(pairs)) + 16
            lens = rng.integers(1, digits + 1, size=(size, 2))
            raw = rng.integers(0, 10, size=(size, 2, digits))
            # Keep the first `len` random digits: the number they spell.
            keep = np.arange(digits) < lens[..., None]
            vals = (raw * keep * powers).sum(-1)
            for a, b in vals.tolist():
                key = (a, b) if a <= b else (b, a)
                if key in seen:
                    continue
                seen.add(key)
                pairs.append((a, b))
                if len(pairs) == n:
                    break
    qlen, alen = 2 * digits + 1, digits + 1
    index = {c: i for i, c in enumerate(ADDITION_CHARS)}
    x = np.empty((n, qlen), dtype=np.int32)
    y = np.empty((n, alen), dtype=np.int32)
    for i, (a, b) in enumerate(pairs):
        q = f"{a}+{b}".ljust(qlen)
        if reverse:
            q = q[::-1]
        x[i] = [index[c] for c in q]
        y[i] = [index[c] for c in str(a + b).ljust(alen)]
    return x, y, ADDITION_CHARS


def start_token(vocab: int) -> int:
    """The id copy_task/reverse_task use to start decoder inputs: vocab + 1."""
    return vocab + 1


def _sequences(n, length, vocab, seed, min_length):
    check_options("copy", n=n, length=length, vocab=vocab, seed=seed)
    fits_memory(f"a task of n={n} sequences of length={length}", n * length, 4 * 4)
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab + 1, size=(n, length)).astype(np.int32)
    if min_length is None:
        lengths = np.full(n, length)
    else:
        check_options("copy", min_length=min_length)
        if not 1 <= min_length <= length:
            raise DataError(f"min_length must be in [1, {length}], got {min_length}")
        lengths = rng.integers(min_length, length + 1, size=n)
        x[np.arange(length)[None, :] >= lengths[:, None]] = 0  # post padding
    return x, lengths


def _decoder_input(y, vocab):
    d = np.empty_like(y)
    d[:, 0] = start_token(vocab)
    d[:, 1:] = y[:, :-1]
    return d


def copy_task(n: int, length: int, vocab: int = 8, seed: int = 0, min_length: int | None = None):
    """Random sequences to copy: ``(x, y, decoder_input)``, all int32 (n, length).

    Symbols are ids 1..vocab, 0 is padding (rows of random length in
    [min_length, length] when min_length is given, padded at the end);
    y = x; decoder_input = y shifted right behind start_token(vocab) = vocab+1
    (teacher forcing). Embedding sizes: vocab+1 for x, vocab+2 for decoder input.
    """
    x, _ = _sequences(n, length, vocab, seed, min_length)
    y = x.copy()
    return x, y, _decoder_input(y, vocab)


def reverse_task(n: int, length: int, vocab: int = 8, seed: int = 0, min_length: int | None = None):
    """As copy_task, but y holds each row's symbols in reverse order (the
    padding stays at the end)."""
    x, lengths = _sequences(n, length, vocab, seed, min_length)
    y = np.zeros_like(x)
    for i, k in enumerate(lengths):
        y[i, :k] = x[i, :k][::-1]
    return x, y, _decoder_input(y, vocab)


def sine(n: int, length: int, noise: float = 0.0, seed: int = 0, period: float = 20.0):
    """Windows of s_t = sin(2 pi t / period + phase) + noise * N(0, 1), phase
    uniform per window: ``x (n, length, 1)`` = s_0..s_{length-1} and
    ``y (n, 1)`` = s_length (the next value, with its noise), float32."""
    check_options("sine", n=n, length=length, noise=noise, period=period, seed=seed)
    fits_memory(f"sine(n={n}, length={length})", n * (length + 1), 8 * 3)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    t = np.arange(length + 1)[None, :]
    s = np.sin(2 * np.pi * t / period + phase)
    if noise:
        s = s + noise * rng.standard_normal(s.shape)
    s = s.astype(np.float32)
    return s[:, :length, None], s[:, length:]


def sine_series(length: int, noise: float = 0.0, seed: int = 0, period: float = 20.0) -> np.ndarray:
    """One long series s_t (t = 0..length-1) as in ``sine``, float32 (length,)."""
    check_options("series", length=length)
    if length == 1:
        return sine(1, 1, noise, seed, period)[0][0, :, 0]
    x, y = sine(1, length - 1, noise, seed, period)
    return np.concatenate([x[0, :, 0], y[0]])


def stateful_batches(series, batch_size: int, chunk_length: int):
    """Cut a long series into inputs/next-value targets for a stateful RNN.

    The series is split into ``batch_size`` contiguous streams; batch k (rows
    k*batch_size .. k*batch_size + batch_size - 1) holds chunk k of every
    stream, so row b of batch k+1 continues row b of batch k (train with
    shuffle off). Returns ``(x, y)`` of shape (chunks*batch_size, chunk_length,
    F) with y[., t] = the value after x[., t]; a 1-D series gets F = 1.
    """
    whole("batch_size", batch_size, 1)
    whole("chunk_length", chunk_length, 1)
    s = np.asarray(series)
    if s.dtype.kind not in "biuf":
        raise DataError(f"series must hold numbers, got dtype {s.dtype}")
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2:
        raise DataError(f"series must be (length,) or (length, features), got {s.shape}")
    per_stream = (len(s) - 1) // batch_size
    chunks = per_stream // chunk_length
    if chunks < 1:
        raise DataError(f"a series of {len(s)} values is too short for {batch_size} streams of "
                        f"at least {chunk_length + 1} values")
    f = s.shape[1]
    used = chunks * chunk_length

    def cut(a):
        a = a[: batch_size * per_stream].reshape(batch_size, per_stream, f)[:, :used]
        a = a.reshape(batch_size, chunks, chunk_length, f).transpose(1, 0, 2, 3)
        return np.ascontiguousarray(a.reshape(chunks * batch_size, chunk_length, f))

    return cut(s[:-1]), cut(s[1:])
