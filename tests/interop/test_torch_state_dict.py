"""PyTorch state dicts: a PyTorch module written the way a PyTorch user writes it, loaded with
rnndsl's weights, computes what rnndsl computes; and weights come back unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import rnndsl
from rnndsl.errors import WeightsError
from rnndsl.interop import from_torch_state_dict, to_torch_state_dict

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
nn = torch.nn

SPEC = """
input x: int[7]
h = x | embed(11, 5) | bilstm(3, seq) | gru(4, seq) | simplernn(5, activation=relu)
output h | batchnorm(epsilon=0.001) | dense(2)
"""


class Net(nn.Module):
    """The spec above as a PyTorch user writes it; attributes named as rnndsl's layers."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(11, 5)
        self.bidirectional = nn.LSTM(5, 3, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(6, 4, batch_first=True)
        self.h = nn.RNN(4, 5, batch_first=True, nonlinearity="relu")
        self.batch_normalization = nn.BatchNorm1d(5, eps=1e-3)
        self.dense = nn.Linear(5, 2)

    def forward(self, x):
        y, _ = self.bidirectional(self.embedding(x))
        y, _ = self.gru(y)
        y, _ = self.h(y)
        return self.dense(self.batch_normalization(y[:, -1]))


@pytest.fixture(scope="module")
def model():
    m = rnndsl.compile(SPEC, dtype="float64", seed=3)
    rng = np.random.default_rng(0)
    # every weight away from its initial value (biases, running statistics included)
    m.set_weights([w + rng.normal(0, 0.3, w.shape) if "variance" not in n else w + rng.random(w.shape)
                   for n, w in zip(m.weight_names(), m.get_weights())])
    return m


def test_pytorch_computes_what_rnndsl_computes(model):
    net = Net().double().eval()
    sd = to_torch_state_dict(model)
    net.load_state_dict(sd)                        # strict: every key of the module, nothing more
    x = np.random.default_rng(1).integers(0, 11, (6, 7))
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-10, atol=1e-12)


def test_weights_come_back_from_pytorch(model):
    net = Net().double()
    theirs = net.state_dict()
    other = rnndsl.compile(SPEC, dtype="float64", seed=9)
    from_torch_state_dict(other, theirs)
    x = np.random.default_rng(2).integers(0, 11, (5, 7))
    with torch.no_grad():
        want = net.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(other.predict(x), want, rtol=1e-10, atol=1e-12)
    from_torch_state_dict(other, to_torch_state_dict(model))
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_state_dict_errors_name_the_layer_and_key(model):
    sd = to_torch_state_dict(model)
    broken = dict(sd)
    del broken["gru.bias_hh_l0"]
    with pytest.raises(WeightsError, match="no 'gru.bias_hh_l0'"):
        from_torch_state_dict(model, broken)
    broken = dict(sd, **{"extra.weight": torch.zeros(2)})
    with pytest.raises(WeightsError, match="keys no layer reads: \\['extra.weight'\\]"):
        from_torch_state_dict(model, broken)
    broken = dict(sd, **{"dense.weight": torch.zeros(3, 5)})
    with pytest.raises(WeightsError, match="layer 'dense': dense/kernel has shape \\(5, 2\\), the state dict gives \\(5, 3\\)"):
        from_torch_state_dict(model, broken)
    for spec, message in (("input x: float[?, 2]\noutput x | gru(3, reset_after=false)", "reset_after=false"),
                          ("input x: float[?, 2]\noutput x | lstm(3, activation=relu)", "default activations"),
                          ("input x: float[?, 2]\noutput attention(x, x, use_scale=true)", "no PyTorch module")):
        with pytest.raises(WeightsError, match=message):
            to_torch_state_dict(rnndsl.compile(spec))
    renamed = to_torch_state_dict(model, names={"h": "rnn"})
    assert "rnn.weight_ih_l0" in renamed and "h.weight_ih_l0" not in renamed
