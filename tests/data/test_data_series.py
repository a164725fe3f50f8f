"""Time series data (issue 19, points 2 and 6): rnndsl.data.windows against Keras's
timeseries_dataset_from_array, csv(..., window=) read by time and split by time, and every
bad input an rnndsl error naming the file, line or column (at `check` for the options)."""

import re
from pathlib import Path

import numpy as np
import pytest

import rnndsl
from rnndsl.data import chronological_split, load_csv, read_series, windows
from rnndsl.errors import DataError, SpecError
from rnndsl.train.sources import load_source

ROOT = Path(__file__).resolve().parents[2]


# --- windows: Keras's numbers --------------------------------------------------------------------------
# Keras 3.15.1, keras.utils.timeseries_dataset_from_array(data, targets, T, sequence_stride=s,
# sampling_rate=r, batch_size=None) (its NumPy "grain" path, run with grain stubbed), with
# targets = the target column shifted by (T-1)r + h: horizon h after the window's last row.

def test_windows_match_keras_docstring_example():
    # indices 0..98, T=10, r=2, s=3, h=1
    x, y = windows(np.arange(99), 10, horizon=1, stride=3, sampling_rate=2)
    assert x.shape == (27, 10, 1) and y.shape == (27, 1)
    assert x[0, :, 0].tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert x[1, :, 0].tolist() == [3, 5, 7, 9, 11, 13, 15, 17, 19, 21]
    assert x[-1, :, 0].tolist() == [78, 80, 82, 84, 86, 88, 90, 92, 94, 96]
    assert y[:, 0].tolist() == [19, 22, 25, 28, 31, 34, 37, 40, 43, 46, 49, 52, 55, 58, 61, 64, 67, 70, 73,
                                76, 79, 82, 85, 88, 91, 94, 97]


def test_windows_match_keras_two_columns_target_column():
    d = np.stack([np.arange(30), 100 + np.arange(30)], 1)
    x, y = windows(d, 4, horizon=2, stride=2, sampling_rate=3, target=1)
    assert x.shape == (10, 4, 2) and x.dtype == np.float32
    assert x[0].tolist() == [[0, 100], [3, 103], [6, 106], [9, 109]]
    assert x[-1].tolist() == [[18, 118], [21, 121], [24, 124], [27, 127]]
    assert y[:, 0].tolist() == [111, 113, 115, 117, 119, 121, 123, 125, 127, 129]


def test_windows_targets_of_their_own():
    d = np.arange(12.0)
    x, y = windows(d, 3)                                   # next value, every column
    assert len(x) == 9 and np.array_equal(y[:, 0], x[:, -1, 0] + 1)
    labels = np.arange(12) % 2
    _, y = windows(d, 3, horizon=2, target=labels)         # an aligned array keeps its whole numbers
    assert y.dtype.kind == "i" and y.tolist() == (labels[4:]).tolist()
    _, y = windows(np.stack([d, -d], 1), 3, target=[1, 0])
    assert y[0].tolist() == [-3, 3]


@pytest.mark.parametrize("kwargs,message", [
    (dict(window=12), "has 12 row(s), too few for one window of 12 steps and its target 1 row(s) after it"),
    (dict(window=4, sampling_rate=4), "4 rows apart"),
    (dict(window=0), "window must be >= 1, got 0"),
    (dict(window=2, horizon=0), "horizon must be >= 1, got 0"),
    (dict(window=2, target=5), "target must name columns 0..0"),
    (dict(window=2, target=np.arange(3)), "an array of its 12 rows"),
])
def test_windows_refuse(kwargs, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        windows(np.arange(12.0), **kwargs)


# --- reading a CSV by time -----------------------------------------------------------------------------

def _write(tmp_path, text, name="s.csv", raw=None):
    p = tmp_path / name
    p.write_bytes(raw if raw is not None else text.encode("utf-8"))
    return p


def test_read_series_picks_columns_and_keeps_lines(tmp_path):
    p = _write(tmp_path, "\ufeffdate,temp,rain\n2024-01-01,1.5,0\n\n2024-01-02,2.5,1\n2024-01-03,3.5,0\n")
    t = read_series(p, columns=["temp", "rain"], target="temp")
    assert t.columns == ["temp", "rain"] and t.targets == ["temp"]
    assert t.x.tolist() == [[1.5, 0], [2.5, 1], [3.5, 0]] and t.y[:, 0].tolist() == [1.5, 2.5, 3.5]
    assert t.line.tolist() == [2, 4, 5] and t.target_positions() == [0]
    # no header: columns by number
    q = _write(tmp_path, "1,10\n2,20\n3,30\n", "n.csv")
    t = read_series(q, columns=[1])
    assert t.x[:, 0].tolist() == [10, 20, 30] and t.columns == ["column 1"]


@pytest.mark.parametrize("text,kwargs,message", [
    ("date,temp\n1,2\n", dict(columns=["tmep"]), r"s.csv:1: no column 'tmep' \(the columns are: date, temp\); "
                                                 r"did you mean 'temp'"),
    ("date,temp\n1,2\n", dict(columns=["temp"], target=["rain"]), r"s.csv:1: no column 'rain'"),
    ("a,b\n1,2\n3\n", {}, r"s.csv:3: expected 2 fields, as the header has, found 1"),
    ("1,2\n3,4,5\n", {}, r"s.csv:2: expected 2 fields, as the first row has, found 3"),
    ("date,temp\n2024-01-01,1\n", {}, r"s.csv:2: column 'date': cannot read '2024-01-01' as a number; choose "
                                      r"the numeric columns with columns="),
    ("a,b\n1,2\n3,\n", {}, r"s.csv:3: column 'b' is empty \(a missing value\)"),
    ("a,b\n1,2\n3,nan\n", {}, r"s.csv:3: column 'b': 'nan' is not a finite number"),
    ("1,2\n3,4\n", dict(columns=["a"]), r"has no header row, so columns cannot name column 'a'"),
    ("1,2\n3,4\n", dict(columns=[2]), r"s.csv:1: columns names column 2, but the rows have 2 column\(s\)"),
    ("a,a\n1,2\n", dict(columns=["a"]), r"s.csv:1: the header names column 'a' 2 times"),
    ("a\n", {}, r"s.csv holds no data rows"),
])
def test_read_series_bad_files_name_file_line_column(tmp_path, text, kwargs, message):
    p = _write(tmp_path, text)
    with pytest.raises(DataError, match=message):
        read_series(p, **kwargs)


def test_read_series_non_utf8_names_the_line(tmp_path):
    p = _write(tmp_path, None, raw=b"a,b\n1,2\n3,\xff\n")
    with pytest.raises(DataError, match=r"s.csv:3: not UTF-8 text \(byte 0xff"):
        read_series(p)
    with pytest.raises(DataError, match="data file not found"):
        read_series(tmp_path / "missing.csv")


def test_load_csv_window_dispatches_and_checks_options(tmp_path):
    p = _write(tmp_path, "t,v\n" + "".join(f"{i},{10 * i}\n" for i in range(10)))
    x, y = load_csv(p, columns=["v"], window=3, horizon=2)
    assert x.shape == (6, 3, 1) and x[0, :, 0].tolist() == [0, 10, 20] and y[:, 0].tolist() == [40, 50, 60, 70,
                                                                                                 80, 90]
    x, y = load_csv(p)                                     # without window: today's table of samples
    assert x.shape == (10, 1) and y.tolist() == list(range(0, 100, 10))
    with pytest.raises(DataError, match="horizon= goes with window="):
        load_csv(p, horizon=2)
    with pytest.raises(DataError, match="label_column is for a table of samples"):
        load_csv(p, window=3, label_column=0)
    with pytest.raises(DataError, match=r"s.csv has 10 row\(s\), too few for one window of 10 steps"):
        load_csv(p, window=10)


def test_chronological_split():
    assert chronological_split(100, 0.2, 0.1) == (70, 80)
    assert chronological_split(10, 0.01, 0.0) == (9, 9)         # a part asked for gets a window
    with pytest.raises(DataError, match="too few to hold out test_split and validation_split"):
        chronological_split(2, 0.5, 0.5)


# --- csv(..., window=) in a spec ----------------------------------------------------------------------

SPEC = '''input x: float[%s]
output x | lstm(4) | dense(%d)
train {
  data = %s
  loss = "mse"
}
'''


def _model(data, shape="4, 2", out=1):
    return rnndsl.compile(SPEC % (shape, out, data))


def test_split_is_by_time_with_validation(tmp_path):
    # the value column is the row's time: each window's target says when it is
    _write(tmp_path, "t,v\n" + "".join(f"{i},{i}\n" for i in range(60)))
    m = _model('csv("s.csv", columns=["t", "v"], target=["v"], window=4, stride=1, test_split=0.2)')
    s = load_source(m, m.graph.train["data"], base=tmp_path, validation_split=0.1)
    assert s.x_train[0].shape == (39, 4, 2) and s.shuffle
    tr, va, te = s.y_train[:, 0], s.validation[1][:, 0], s.y_test[:, 0]
    assert len(va) == 6 and len(te) == 11
    assert tr.max() < va.min() and va.max() < te.min()           # no target crosses back
    assert np.array_equal(np.concatenate([tr, va, te]), np.arange(4, 60))
    assert np.array_equal(s.naive_test[:, 0], te - 1)                    # the window's last value
    assert np.array_equal(s.x_test[0][:, -1, 1], te - 1)
    assert "56 windows of 4 steps over 60 rows of s.csv" in s.notes[0] and "test 11 (lines 51-61)" in s.notes[0]


@pytest.mark.parametrize("data,shape,out,message", [
    ('csv("s.csv", columns=["v"], window=5)', "4, 1", 1, "window=5 but input 'x' declares 4 steps"),
    ('csv("s.csv", columns=["v"], window=4)', "4, 2", 1, r"the windows have 1 feature\(s\) \(columns 'v'\) but "
                                                       "input 'x' takes 2"),
    ('csv("s.csv", columns=["t", "v"], target="v", window=4)', "4, 2", 2, r"output 'dense' gives 2 value\(s\) per "
                                                                         "sample, but there are 1 target"),
    ('csv("s.csv", columns=["v"], window=40)', "?, 1", 1, r"s.csv has 12 row\(s\), too few for one window of 40"),
    ('csv("s.csv", columns=["w"], window=4)', "4, 1", 1, r"s.csv:1: no column 'w'"),
])
def test_series_that_does_not_fit_the_model(tmp_path, data, shape, out, message):
    _write(tmp_path, "t,v\n" + "".join(f"{i},{i}\n" for i in range(12)))
    m = _model(data, shape, out)
    with pytest.raises(DataError, match=message):
        load_source(m, m.graph.train["data"], base=tmp_path)


@pytest.mark.parametrize("data,message", [
    ('csv("s.csv", horizon=2)', "horizon= goes with window=, which makes csv() a time series"),
    ('csv("s.csv", columns=["a"])', "columns= goes with window="),
    ('csv("s.csv", window=4, label_column=1)', "label_column is for a table of samples"),
    ('csv("s.csv", window=4, columns=["a", "a"])', "column 'a' is named twice in columns"),
    ('csv("s.csv", window=4, target=[1.5])', "target takes a column's name or number"),
    ('csv("s.csv", window=4, columns=[])', "columns takes a column's name or number"),
    ('csv("s.csv", window=0)', "window takes a whole number >= 1"),
    ('csv("s.csv", window=4, stride=-1)', "stride takes a whole number >= 1"),
    ('csv("s.csv", window=4, horizn=2)', "did you mean 'horizon'"),
])
def test_check_refuses_bad_series_options_at_their_place(data, message):
    with pytest.raises(SpecError, match=re.escape(message)) as e:
        _model(data)
    assert "<spec>:4:" in str(e.value)


def test_check_takes_series_options():
    m = _model('csv("s.csv", columns=["a", 2], target="a", window=4, horizon=2, stride=3, sampling_rate=2)')
    assert m.graph.train["data"] == {"name": "csv", "path": "s.csv", "columns": ["a", 2], "target": "a",
                                     "window": 4, "horizon": 2, "stride": 3, "sampling_rate": 2}


def test_shipped_demand_data_is_what_its_script_makes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_demand", ROOT / "examples" / "data" / "make_demand.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (ROOT / "examples" / "data" / "demand.csv").read_text(encoding="utf-8") == mod.demand_rows()
