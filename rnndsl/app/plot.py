"""`python -m rnndsl plot history.csv -o curves.png`: the loss and metrics of a training
run per epoch, from the CSV that `run --log` (CSVLogger) writes.

One panel per figure (loss first, then each metric, then the learning rate when logged),
the training curve and the validation curve (val_...) together; the x axis counts
epochs from 1, as the progress lines do. Needs matplotlib (pip install 'rnndsl[plot]').
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..errors import DataError, RnnError
from ..train.checkpoint import atomic_write

PLOT_HINT = "pip install 'rnndsl[plot]' (or pip install matplotlib)"
MAX_BYTES = 64 << 20            # a history has a row per epoch: far below this
FORMATS = ("png", "svg", "pdf")


class PlotUnavailable(RnnError):
    """matplotlib is not installed."""


def read_history(path) -> tuple[list[int], dict[str, list[float]]]:
    """(epochs, {column: values}) of a CSVLogger file; NA and empty cells are NaN."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DataError(f"{path}: {size:,} bytes is not a training history (a row per epoch)")
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataError(f"{path} is empty: expected a header line such as epoch,loss,val_loss")
    sep = max(",;\t", key=lines[0].count)
    rows = list(csv.reader(lines, delimiter=sep))
    header = [h.strip() for h in rows[0]]
    if "epoch" not in header:
        raise DataError(f"{path}: no 'epoch' column in the header {','.join(header)[:200]!r} "
                        "(written by run --log or CSVLogger?)")
    if len(header) < 2:
        raise DataError(f"{path}: only the epoch column, nothing to plot")
    columns: dict[str, list[float]] = {h: [] for h in header}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path}:{lineno}: {len(row)} values for {len(header)} columns")
        for h, cell in zip(header, row):
            cell = cell.strip()
            if cell in ("", "NA", "nan", "NaN"):
                columns[h].append(math.nan)
                continue
            try:
                columns[h].append(float(cell))
            except ValueError:
                raise DataError(f"{path}:{lineno}: column {h!r} holds {cell[:40]!r}, not a number") from None
    epochs = columns.pop("epoch")
    if not epochs:
        raise DataError(f"{path}: a header and no epochs")
    if any(math.isnan(e) for e in epochs):
        raise DataError(f"{path}: an epoch without a number")
    return [int(e) for e in epochs], columns


def panels(columns: dict) -> list[tuple[str, list[str]]]:
    """(title, columns drawn) per panel: each name with its val_ twin, loss first and the
    learning rate last; columns with no value at all are left out."""
    present = [k for k, v in columns.items() if any(not math.isnan(x) for x in v)]
    names = [k for k in present if not k.startswith("val_")]
    names += [k[4:] for k in present if k.startswith("val_") and k[4:] not in names]
    names.sort(key=lambda k: (k != "loss", k == "learning_rate"))
    return [(k, [c for c in (k, f"val_{k}") if c in present]) for k in names]


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as e:
        raise PlotUnavailable(f"plot needs matplotlib, which is not installed ({e}); install it with: "
                              f"{PLOT_HINT}") from None
    return Figure, FigureCanvasAgg, MaxNLocator


def plot_history(csv_path, out_path) -> Path:
    """Draw the history in csv_path into out_path (.png, .svg or .pdf; written atomically)."""
    out_path = Path(out_path)
    fmt = out_path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise DataError(f"cannot draw {out_path}: the picture's name must end in {', '.join('.' + f for f in FORMATS)}")
    epochs, columns = read_history(csv_path)
    shown = panels(columns)
    if not shown:
        raise DataError(f"{csv_path}: every column is empty (NA); nothing to plot")
    Figure, FigureCanvasAgg, MaxNLocator = _matplotlib()
    cols = min(len(shown), 3)
    rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    x = [e + 1 for e in epochs]
    for i, (title, names) in enumerate(shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        for name in names:
            ax.plot(x, columns[name], marker="o" if len(x) <= 30 else None, markersize=3,
                    label="validation" if name.startswith("val_") else "training")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if title == "learning_rate" and all(v > 0 for v in columns[title] if not math.isnan(v)):
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        if len(names) > 1:
            ax.legend()
    atomic_write(out_path, lambda f: fig.savefig(f, format=fmt), DataError, "picture")
    return out_path
