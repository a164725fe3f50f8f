"""Pretrained word vectors in GloVe's text format (``word v1 v2 ... vD`` per line).

``load_glove`` builds an embedding matrix for a vocabulary (word -> id, id 0 =
padding): row ``id`` holds the file's vector for the word, rows of words the
file lacks are drawn uniform(-0.05, 0.05) (Keras's Embedding initialiser),
row 0 is zeros. ``nearest`` ranks words by cosine similarity.
Also reads word2vec text files (their "count dim" header line is skipped) and
.gz files.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from rnndsl.errors import DataError, did_you_mean

__all__ = ["load_glove", "nearest"]


def _word_ids(vocab) -> dict[str, int]:
    """word -> id from a dict or a Vocabulary (anything with .word_to_id)."""
    mapping = getattr(vocab, "word_to_id", vocab)
    if not hasattr(mapping, "items"):
        raise DataError(f"vocab must map word -> id, got {type(vocab).__name__}")
    return dict(mapping)


def _rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _is_float(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def load_glove(path, vocab, dim: int, rng=None, dtype=np.float32):
    """Embedding matrix for ``vocab`` from a GloVe text file.

    Returns ``(matrix (max_id + 1, dim), n_found, missing_words)``; n_found and
    missing_words (in id order) count the vocabulary words other than id 0.
    ``rng`` is a numpy Generator or a seed. A line with the wrong number of
    values, or a vector the vocabulary uses holding NaN or inf (or a value beyond
    ``dtype``), raises DataError naming ``path:line``.
    """
    path = Path(path)
    ids = _word_ids(vocab)
    if dim <= 0:
        raise DataError(f"dim must be positive, got {dim}")
    if not path.is_file():
        raise DataError(f"vector file not found: {path}")
    if ids and min(ids.values()) < 0:
        raise DataError("vocabulary ids must be >= 0")
    rows = max(ids.values(), default=0) + 1
    # Drawn for the whole matrix up front so that the values do not depend on
    # the order of lines in the file.
    matrix = _rng(rng).uniform(-0.05, 0.05, size=(rows, dim)).astype(dtype)
    found = np.zeros(rows, dtype=bool)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    raise DataError(f"{path}:{lineno}: not valid UTF-8") from None
                if not line.strip():
                    continue
                word, _, rest = line.partition(" ")
                rest = rest.strip()
                # Fast path: count separators instead of splitting every line.
                n = rest.count(" ") + 1 if rest else 0
                values = None
                if n != dim:
                    parts = line.split()
                    if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                        if int(parts[1]) != dim:
                            raise DataError(f"{path}:1: the file's vectors have {parts[1]} values "
                                            f"but dim={dim}")
                        continue  # word2vec header "count dim"
                    if len(parts) - 1 == dim:
                        word, values = parts[0], parts[1:]
                    elif len(parts) - 1 > dim and not _is_float(parts[-dim - 1]):
                        # words containing spaces (e.g. in glove.840B)
                        word, values = " ".join(parts[:-dim]), parts[-dim:]
                    else:
                        got = len(parts) - 1
                        if lineno == 1:
                            raise DataError(f"{path}:1: the file's vectors have {got} values but "
                                            f"dim={dim}")
                        raise DataError(f"{path}:{lineno}: expected {dim} values after the word "
                                        f"{parts[0]!r}, found {got}")
                i = ids.get(word)
                if i is None or i == 0:
                    continue
                try:
                    vec = np.array(values if values is not None else rest.split(), dtype=np.float64)
                except ValueError:
                    raise DataError(f"{path}:{lineno}: the vector of {word!r} holds a value that "
                                    f"is not a number") from None
                with np.errstate(over="ignore", invalid="ignore"):
                    row = vec.astype(matrix.dtype)
                if not np.isfinite(row).all():
                    j = int(np.flatnonzero(~np.isfinite(row))[0])
                    raise DataError(f"{path}:{lineno}: the vector of {word!r} holds {vec[j]} at value {j + 1}"
                                    f"{' (beyond ' + str(matrix.dtype) + ')' if np.isfinite(vec[j]) else ''}; "
                                    "pretrained vectors must be finite numbers")
                matrix[i] = row
                found[i] = True
    except OSError as e:
        raise DataError(f"cannot read vector file {path}: {e}") from e
    except EOFError as e:
        raise DataError(f"vector file {path} is truncated ({e})") from e
    matrix[0] = 0.0
    by_id = sorted((i, w) for w, i in ids.items() if i != 0)
    missing = [w for i, w in by_id if not found[i]]
    n_found = sum(1 for i, _ in by_id if found[i])
    return matrix, n_found, missing


def nearest(matrix, query, vocab, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` words with the highest cosine similarity to ``query`` (a word
    of ``vocab`` or a vector), best first; the query word itself, padding and
    all-zero rows are left out."""
    matrix = np.asarray(matrix, dtype=np.float64)
    ids = _word_ids(vocab)
    words = {i: w for w, i in ids.items()}
    exclude = {0}
    if isinstance(query, str):
        if query not in ids:
            hint = did_you_mean(query, ids)
            raise DataError(f"word {query!r} is not in the vocabulary" + (f"; {hint}" if hint else ""))
        q = matrix[ids[query]]
        exclude.add(ids[query])
    else:
        q = np.asarray(query, dtype=np.float64).ravel()
        if q.shape != (matrix.shape[1],):
            raise DataError(f"query vector has {q.size} values, the matrix rows have {matrix.shape[1]}")
    qn = np.linalg.norm(q)
    if qn == 0:
        raise DataError("query vector is all zeros; cosine similarity is undefined")
    norms = np.linalg.norm(matrix, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sims = matrix @ q / (norms * qn)
    order = np.argsort(-np.nan_to_num(sims, nan=-np.inf), kind="stable")
    out = []
    for i in order:
        i = int(i)
        if i in exclude or norms[i] == 0 or i not in words:
            continue
        out.append((words[i], float(sims[i])))
        if len(out) == k:
            break
    return out
