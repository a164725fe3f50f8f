"""The cell definitions the tests use (plain strings: the CUDA case script imports them too)."""

MGU = """
cell mgu(units) {
  f  = sigmoid(x @ Wf + h @ Uf + bf)
  hc = tanh(x @ Wh + (f * h) @ Uh + bh)
  h  = (1 - f) * h + f * hc
}
"""

# Keras's LSTM: gates i, f, c, o; Keras initialises the forget bias to 1
LSTM = """
cell mylstm(units) state(h, c) init(bf = ones) {
  i = sigmoid(x @ Wi + h @ Ui + bi)
  f = sigmoid(x @ Wf + h @ Uf + bf)
  g = tanh(x @ Wc + h @ Uc + bc)
  o = sigmoid(x @ Wo + h @ Uo + bo)
  c = f * c + i * g
  h = o * tanh(c)
}
"""

# Keras's GRU with reset_after=true: input bias b*, recurrent bias rb*
GRU_AFTER = """
cell gru_after(units) {
  z  = sigmoid(x @ Wz + bz + h @ Uz + rbz)
  r  = sigmoid(x @ Wr + br + h @ Ur + rbr)
  hh = tanh(x @ Wh + bh + r * (h @ Uh + rbh))
  h  = z * h + (1 - z) * hh
}
"""

# Keras's GRU with reset_after=false
GRU_BEFORE = """
cell gru_before(units) {
  z  = sigmoid(x @ Wz + h @ Uz + bz)
  r  = sigmoid(x @ Wr + h @ Ur + br)
  hh = tanh(x @ Wh + (r * h) @ Uh + bh)
  h  = z * h + (1 - z) * hh
}
"""

# IndRNN (Li et al. 2018): an element-wise recurrent weight and relu
INDRNN = """
cell indrnn(units) init(w = ones) {
  h = relu(x @ W + w * h + b)
}
"""

# LSTM with peephole connections (Gers & Schmidhuber): the gates also see the cell state
PEEPHOLE = """
cell peephole(units) state(h, c) {
  i = sigmoid(x @ Wi + h @ Ui + pi * c + bi)
  f = sigmoid(x @ Wf + h @ Uf + pf * c + bf)
  g = tanh(x @ Wc + h @ Uc + bc)
  c = f * c + i * g
  o = sigmoid(x @ Wo + h @ Uo + po * c + bo)
  h = o * tanh(c)
}
"""

# two inputs, as the Keras guide's nested-input cell: each sequence has its own kernel
TWO = """
cell two(units) inputs(a, b) {
  z = sigmoid(a @ Wa + b @ Wb + h @ U + bz)
  h = z * h + (1 - z) * tanh(a @ Va + b @ Vb)
}
"""

# every function, division, negation, numbers, an input used element-wise, a product of a
# product, a second state that is never read, and reductions: over the input's features (of
# the input and of an element-wise value of it) and of a per-step product
ODD = """
cell odd(units) state(h, m) {
  a = exp(-(x @ Wa) * 0.5)
  d = hard_sigmoid(h @ Ud + bd)
  q = (x * x - 0.25 * mean(x)) @ Wq
  r = relu((x @ Wr) @ Ur2) + linear(h) * s - max(h @ Ud) * 0.1
  p = softplus(x @ Wp) + sqrt(abs(d) + 1) - log(1.5 + d) * rsqrt(var(x) + sum(x * x) * 0.1 + 1)
  h = tanh(a / (1.5 + d * d) - r + q + p)
  m = sigmoid(h) - 2 * a
}
"""

# reductions over units and the cell functions, an output of its own (`output = ...`): a
# layer norm of the gate pre-activation, a max of the new c, a sum of the previous h
LNC = """
cell lnc(units) state(h, c) init(g = ones) {
  a = x @ W + h @ U
  n = (a - mean(a)) * rsqrt(var(a) + 0.001)
  c = tanh(g * n + b) * 0.5 + c * 0.5
  h = c * sigmoid(max(c) - sum(h) * 0.1)
  output = softplus(h) + abs(c) * sqrt(exp(c)) + log(1 + c * c)
}
"""

