"""Small edges a newcomer meets first (issue 16, point 6)."""

import numpy as np
import pytest

import rnndsl
from rnndsl.errors import RnnError

SPEC = "input src: float[?, 7]\noutput src | lstm(3)"


@pytest.mark.parametrize("dtype", ["float32", "f4", np.float32, np.dtype("float64"), "float64"])
def test_compile_takes_float32_and_float64(dtype):
    assert rnndsl.compile(SPEC, dtype=dtype).dtype == np.dtype(dtype).name


@pytest.mark.parametrize("dtype", ["int8", "float16", "bfloat16", None, 3, "floaty", object])
def test_compile_refuses_other_dtypes_at_the_call(dtype):
    with pytest.raises(RnnError, match="dtype must be float32 or float64"):
        rnndsl.compile(SPEC, dtype=dtype)


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_compile_refuses_bad_seeds(seed):
    with pytest.raises(RnnError, match="seed must be a non-negative integer"):
        rnndsl.compile(SPEC, seed=seed)


def test_graph_picture_labels_inputs_with_name_and_shape():
    dot = rnndsl.compile(SPEC).to_dot()
    line = next(s for s in dot.splitlines() if s.strip().startswith("n0 "))
    assert line.strip() == 'n0 [label="src\\n(None, None, 7)", shape=oval];'
    assert "InputLayer" not in line and "{" not in line
