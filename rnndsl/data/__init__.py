"""Data sources that need no network: files, text, the digits, synthetic tasks."""

from .arrays import load_arrays, load_csv
from .digits import digits_path, load_digits, train_test_split
from .glove import load_glove, nearest
from .registry import get_dataset, list_datasets
from .series import chronological_split, read_series, windows
from .tasks import (
    ADDITION_CHARS,
    addition,
    copy_task,
    decode_chars,
    encode_chars,
    reverse_task,
    sine,
    sine_series,
    start_token,
    stateful_batches,
)
from .text import TextEncoder, Vocabulary, load_labelled_text, pad_sequences, tokenize
from .textfiles import load_text_csv, load_text_folder

__all__ = [
    "ADDITION_CHARS",
    "TextEncoder",
    "Vocabulary",
    "addition",
    "chronological_split",
    "copy_task",
    "decode_chars",
    "digits_path",
    "encode_chars",
    "get_dataset",
    "list_datasets",
    "load_arrays",
    "load_csv",
    "load_digits",
    "load_glove",
    "load_labelled_text",
    "load_text_csv",
    "load_text_folder",
    "nearest",
    "pad_sequences",
    "read_series",
    "reverse_task",
    "sine",
    "sine_series",
    "start_token",
    "stateful_batches",
    "tokenize",
    "windows",
    "train_test_split",
]
