import numpy as np
import pytest

from rnndsl.data import (
    ADDITION_CHARS,
    addition,
    copy_task,
    decode_chars,
    get_dataset,
    list_datasets,
    reverse_task,
    sine,
    sine_series,
    start_token,
    stateful_batches,
)
from rnndsl.errors import DataError


def parse(x_row, y_row, reverse):
    q = decode_chars(x_row)
    if reverse:
        q = q[::-1]
    a, b = q.strip().split("+")
    return int(a), int(b), int(decode_chars(y_row).strip())


@pytest.mark.parametrize("reverse", [True, False])
def test_addition_answers_are_sums(reverse):
    x, y, chars = addition(500, digits=3, reverse=reverse, seed=1)
    assert chars == ADDITION_CHARS == " +0123456789" and len(chars) == 12
    assert x.shape == (500, 7) and y.shape == (500, 4)
    keys = set()
    for i in range(500):
        a, b, s = parse(x[i], y[i], reverse)
        assert a + b == s and a < 1000 and b < 1000
        keys.add((min(a, b), max(a, b)))
    assert len(keys) == 500  # unique questions
    q = decode_chars(x[0])
    assert (q.startswith(" ") or q[0].isdigit()) and len(q) == 7
    if reverse:  # padding (spaces) ends up in front, as in Keras's example
        assert q == q.rstrip()
    else:
        assert q == q.ljust(7)


def test_addition_seeded_and_exhaustive():
    a = addition(100, seed=5)
    b = addition(100, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], addition(100, seed=6)[0])
    x, y, _ = addition(55, digits=1, seed=0)  # all pairs of 0..9
    pairs = {tuple(sorted(parse(x[i], y[i], True)[:2])) for i in range(55)}
    assert len(pairs) == 55
    with pytest.raises(DataError, match="only 55"):
        addition(56, digits=1)


def test_copy_and_reverse():
    x, y, d = copy_task(20, 6, vocab=5, seed=0)
    assert x.shape == y.shape == d.shape == (20, 6)
    assert x.min() >= 1 and x.max() <= 5
    np.testing.assert_array_equal(x, y)
    assert start_token(5) == 6 and np.all(d[:, 0] == 6)
    np.testing.assert_array_equal(d[:, 1:], y[:, :-1])
    x, y, d = reverse_task(20, 6, vocab=5, seed=0)
    np.testing.assert_array_equal(y, x[:, ::-1])


def test_variable_length_reverse_keeps_padding_at_end():
    x, y, d = reverse_task(50, 8, vocab=9, seed=2, min_length=3)
    for i in range(50):
        k = int((x[i] != 0).sum())
        assert 3 <= k <= 8
        assert np.all(x[i, k:] == 0) and np.all(x[i, :k] > 0)
        np.testing.assert_array_equal(y[i, :k], x[i, :k][::-1])
        assert np.all(y[i, k:] == 0)
    assert len({int((r != 0).sum()) for r in x}) > 1


def test_sine_next_value():
    x, y = sine(16, 30, noise=0.0, seed=0, period=20.0)
    assert x.shape == (16, 30, 1) and y.shape == (16, 1) and x.dtype == np.float32
    h = 2 * np.pi / 20.0
    # sin(a + 2h) = 2 cos(h) sin(a + h) - sin(a)
    pred = 2 * np.cos(h) * x[:, -1, 0] - x[:, -2, 0]
    np.testing.assert_allclose(y[:, 0], pred, atol=1e-5)
    xn, yn = sine(16, 30, noise=0.1, seed=0)
    assert 0.03 < np.std(xn - x) < 0.3


def test_series_and_stateful_batches():
    s = sine_series(101, seed=3)
    assert s.shape == (101,) and s.dtype == np.float32
    x, y = stateful_batches(np.arange(23.0), batch_size=2, chunk_length=3)
    # streams: 0..10 and 11..21 (targets one ahead); 3 chunks of 3
    assert x.shape == y.shape == (6, 3, 1)
    np.testing.assert_array_equal(x[:, :, 0], [[0, 1, 2], [11, 12, 13], [3, 4, 5], [14, 15, 16],
                                               [6, 7, 8], [17, 18, 19]])
    np.testing.assert_array_equal(y, x + 1)
    # row b of batch k+1 continues row b of batch k
    np.testing.assert_array_equal(x[2:4, 0, 0], x[0:2, -1, 0] + 1)
    with pytest.raises(DataError, match="too short"):
        stateful_batches(np.arange(5.0), 4, 3)


def test_registry():
    assert list_datasets() == ["addition", "copy", "digits", "reverse", "sine"]
    x, y, chars = get_dataset("addition", n=10, seed=1)
    assert x.shape == (10, 5)
    x, y, d = get_dataset("reverse", n=3, length=4)
    np.testing.assert_array_equal(y, x[:, ::-1])
    with pytest.raises(DataError, match="did you mean 'digits'"):
        get_dataset("digit")
    with pytest.raises(DataError, match="did you mean 'length'"):
        get_dataset("copy", n=3, lenght=4)
    with pytest.raises(DataError, match="needs option"):
        get_dataset("sine")
