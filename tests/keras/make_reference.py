"""Prints the Keras 3 outputs that tests/keras/test_keras_semantics.py holds rnndsl to.

Not run by the suite (Keras is not a dependency): run it in a scratch venv with Keras 3
and any backend (`pip install keras torch`, KERAS_BACKEND=torch) and paste what it prints.
Every model gets the weights of `weights_for` (the same function the test uses), in the
order Keras's get_weights() lists them, which is the order rnndsl must list them too.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402


def weights_for(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [np.round(rng.uniform(-0.6, 0.6, s), 3) for s in shapes]


def load(model, seed=0):
    model.set_weights(weights_for([w.shape for w in model.get_weights()], seed))
    return model


def show(name, value):
    print(f"{name} = {np.array2string(np.asarray(value, np.float64), precision=7, separator=', ', floatmode='fixed')}")


# 1. Bidirectional without return_sequences: the halves' zero_output_for_mask follows return_sequences
ids = np.array([[1, 2, 3, 0], [2, 0, 0, 0], [3, 1, 0, 0]])
x = keras.Input((None,), dtype="int32")
y = layers.Bidirectional(layers.GRU(3, zero_output_for_mask=True))(layers.Embedding(5, 2, mask_zero=True)(x))
show("BI_GRU_LAST", load(keras.Model(x, y)).predict(ids, verbose=0))

# 2. Merged masks (OR): two masked inputs, padded at different steps
a_ids = np.array([[1, 2, 0, 0], [0, 3, 1, 0], [2, 0, 0, 1]])
b_ids = np.array([[1, 0, 3, 0], [2, 0, 0, 0], [0, 0, 2, 1]])
for merge in ("Concatenate", "Add"):
    a, b = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")
    ea = layers.Embedding(4, 2, mask_zero=True)(a)
    eb = layers.Embedding(4, 2, mask_zero=True)(b)
    y = layers.LSTM(2)(getattr(layers, merge)()([ea, eb]))
    show(f"MERGED_{merge.upper()}", load(keras.Model([a, b], y)).predict([a_ids, b_ids], verbose=0))

# 3. A stateful layer with initial_state starts from the given state on every call
src_ids = np.array([[1, 2, 3], [3, 1, 2]])
tgt_ids = np.array([[2, 1], [1, 3]])
src, tgt = keras.Input((None,), batch_size=2, dtype="int32"), keras.Input((None,), batch_size=2, dtype="int32")
_, h, c = layers.LSTM(3, return_state=True)(layers.Embedding(4, 2)(src))
dec = layers.LSTM(3, stateful=True, return_sequences=True)(layers.Embedding(4, 2)(tgt), initial_state=[h, c])
m = load(keras.Model([src, tgt], layers.Dense(2)(dec)))
show("STATEFUL_EDGE_FIRST", m.predict([src_ids, tgt_ids], verbose=0))
show("STATEFUL_EDGE_SECOND", m.predict([src_ids, tgt_ids], verbose=0))

# 4. Weight order of multi-branch graphs: the guide's encoder-decoder and a two-input fan-in
src, tgt = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")
_, h, c = layers.LSTM(4, return_state=True)(layers.Embedding(6, 3)(src))
dec = layers.LSTM(4)(layers.Embedding(7, 3)(tgt), initial_state=[h, c])
m = load(keras.Model([src, tgt], layers.Dense(2)(dec)))
print("ENCDEC_NAMES =", [w.path for w in m.weights])
show("ENCDEC", m.predict([np.array([[1, 5, 2], [3, 0, 4]]), np.array([[6, 1], [2, 2]])], verbose=0))
a, b = keras.Input((None, 2)), keras.Input((None, 2))
fa = layers.Dense(3)(layers.GRU(3, return_sequences=True)(a))
fb = layers.SimpleRNN(3, return_sequences=True)(b)
m = load(keras.Model([a, b], layers.Dense(2)(layers.Add()([fa, fb]))))
print("FANIN_NAMES =", [w.path for w in m.weights])
xa = np.round(np.linspace(-1, 1, 12).reshape(2, 3, 2), 3)
xb = np.round(np.cos(np.arange(12)).reshape(2, 3, 2), 3)
show("FANIN", m.predict([xa, xb], verbose=0))
