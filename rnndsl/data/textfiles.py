"""Labelled text from a CSV column or from a folder of class folders, read as `text()`
reads its TSV: tokenised, a vocabulary built (or given), padded to ``maxlen`` ids.

Both return ``(x (N, maxlen) int32, y (N,) int64, vocab, label_names)`` as
``load_labelled_text`` does; every bad input is a DataError naming the file and its
line, or the column, or the folder.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Sequence

from ..errors import DataError, clip, did_you_mean
from .options import check_csv_format, column_index, existing_file

from .text import Vocabulary, check_text_options, labelled_ids, read_utf8, tokenize

__all__ = ["load_text_csv", "load_text_folder", "FOLDER_FORMATS"]

FOLDER_FORMATS = (".txt",)          # as Keras's text_dataset_from_directory


def _column_option(name: str, value):
    """A column named by its header (a non-empty string) or numbered from 0."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise DataError(f"{name} must be a column: its header name, or its number counted from 0, got "
                    f"{str(value)[:40]!r}")


def load_text_csv(path, text, label=None, skip_header="auto", delimiter: str = ",",
                  vocab: Vocabulary | None = None, max_words: int | None = None, maxlen: int | None = None,
                  padding: str = "pre", truncating: str = "pre", labels: Sequence[str] | None = None):
    """A CSV with a column of texts (``text``) and one of labels (``label``; None: no
    labels, y = None), each named by its header or numbered from 0. Quoted fields
    (Python's csv module: a field may hold the delimiter, quotes doubled, line breaks)
    in UTF-8. skip_header: True, False, or "auto" (a header row when a column is named
    by it). Blank lines are skipped; a text with no word is all padding."""
    text = _column_option("text", text)
    if label is not None:
        label = _column_option("label", label)
        if label == text:
            raise DataError(f"text and label name the same column {text!r}")
    check_csv_format(skip_header, delimiter)
    check_text_options(max_words, maxlen, padding, truncating, labels)
    path = existing_file(path)
    named = isinstance(text, str) or isinstance(label, str)
    has_header = skip_header is True or (skip_header == "auto" and named)
    reader = csv.reader(io.StringIO(read_utf8(path, "CSV file"), newline=""), delimiter=delimiter)
    header: list[str] | None = None
    ncols = first = None
    col_text = col_label = None
    texts: list[list[str]] = []
    label_strs: list[str] = []
    line = 0
    try:
        while True:
            line = reader.line_num + 1          # where the record starts (a quoted field may span lines)
            row = next(reader, None)
            if row is None:
                break
            if not row or all(not c.strip() for c in row):
                continue
            if ncols is None:
                ncols, first = len(row), line
                if has_header:
                    header = [c.strip() for c in row]
                col_text = column_index(path, "text", text, header, ncols, line)
                col_label = None if label is None else column_index(path, "label", label, header, ncols, line)
                if has_header:
                    continue
            if len(row) != ncols:
                raise DataError(f"{path}:{line}: expected {ncols} fields (as line {first}), found {len(row)}; a "
                                f"field that holds the delimiter {delimiter!r} goes in double quotes")
            texts.append(tokenize(row[col_text]))
            if col_label is not None:
                value = row[col_label].strip()
                if not value:
                    raise DataError(f"{path}:{line}: empty label (column {label!r})")
                label_strs.append(value)
    except csv.Error as e:
        raise DataError(f"{path}:{line}: malformed CSV ({e})") from None
    if not texts:
        raise DataError(f"{path} holds no data rows" + (" (only its header)" if header is not None else ""))
    return labelled_ids(str(path), label_strs if label is not None else None, texts, vocab, max_words, maxlen,
                        padding, truncating, labels)


def _text_files(folder: Path) -> list[Path]:
    """The .txt files under ``folder`` (sub-folders too, links to folders not followed), in
    sorted order: folders by path, files by name, as Keras lists them."""
    found = []
    for root, _, files in sorted(os.walk(folder), key=lambda w: w[0]):
        found += [Path(root) / f for f in sorted(files) if f.lower().endswith(FOLDER_FORMATS)]
    return found


def load_text_folder(path, vocab: Vocabulary | None = None, max_words: int | None = None,
                     maxlen: int | None = None, padding: str = "pre", truncating: str = "pre",
                     labels: Sequence[str] | None = None):
    """A folder with one sub-folder per class, each of UTF-8 ``.txt`` files, one text
    per file (Keras's text_dataset_from_directory): the class names are the sub-folders'
    names in sorted order (those starting with "." left out), or ``labels`` (a subset of
    them, in the order given), and each text's label is its class's index."""
    check_text_options(max_words, maxlen, padding, truncating, labels)
    path = Path(path)
    if not path.exists():
        raise DataError(f"data folder not found: {path}")
    if not path.is_dir():
        raise DataError(f"data path {path} is not a folder (folder() reads one sub-folder per class)")
    try:
        found = sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))
    except OSError as e:
        raise DataError(f"cannot list the folder {path}: {e.strerror or e}") from None
    if not found:
        raise DataError(f"{path} holds no class folders: folder() reads one sub-folder per class, each of "
                        f"{' or '.join(FOLDER_FORMATS)} files")
    if labels is None:
        classes = found
    else:
        classes = [str(s) for s in labels]
        missing = [c for c in classes if c not in found]
        if missing:
            hint = did_you_mean(missing[0], found)
            raise DataError(f"{path}: labels names {clip(missing[0])!r}, which is not one of its class folders "
                            f"({', '.join(found[:20])})" + (f"; {hint}" if hint else ""))
    texts: list[list[str]] = []
    label_strs: list[str] = []
    for name in classes:
        files = _text_files(path / name)
        if not files:
            raise DataError(f"{path / name}: class folder {clip(name)!r} holds no "
                            f"{' or '.join(FOLDER_FORMATS)} files")
        for f in files:
            texts.append(tokenize(read_utf8(f)))
            label_strs.append(name)
    return labelled_ids(str(path), label_strs, texts, vocab, max_words, maxlen, padding, truncating, classes,
                        item="file")
