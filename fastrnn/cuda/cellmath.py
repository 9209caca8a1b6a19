"""The pointwise math of each cell for one hidden unit, forward and backward side by side, as
CUDA device functions shared by the per-step kernels (kernels.py) and the whole-sequence
kernels (sequence.py). The same formulas as fastrnn/cpu/{elman,gru,lstm}.py; "pre" values already hold
W_ih x + W_hh h + biases (GRU's n gate: the input side an_x and q = W_hn h + b_hn apart).

Constants are one_like / zero_like of an argument: a bare 1.0 is float64 and would widen every
float32 expression it touches into float64 instructions (tests/cuda_ptx.py checks the PTX).
"""
import math

from numba import cuda

from ..cells._math import one_like, zero_like


@cuda.jit(device=True)
def sigmoid(x):
    one = one_like(x)
    return one / (one + math.exp(-x))


# ------------------------------------------------------------------ Elman: h = f(a)
@cuda.jit(device=True)
def elman_forward(a, relu):
    zero = zero_like(a)
    return (a if a > zero else zero) if relu else math.tanh(a)


@cuda.jit(device=True)
def elman_backward(g, y, relu):
    """dL/da from dL/dh = g and the output y = f(a)."""
    zero = zero_like(g)
    return (g if y > zero else zero) if relu else g * (one_like(g) - y * y)


# ------------------------------------------------------------------ expRNN: h = modrelu(z; b)
@cuda.jit(device=True)
def modrelu_forward(z, b):
    """sign(z) max(|z| + b, 0); z = 0 gives 0 and a NaN z passes through (fastrnn/cpu/exprnn.py)."""
    zero = zero_like(z)
    m = abs(z) + b
    if m <= zero:
        return zero
    if z > zero:
        return m
    if z < zero:
        return -m
    return z * m


@cuda.jit(device=True)
def modrelu_backward(g, y):
    """(dL/dz, dL/db) from dL/dh = g and the output y: live where y != 0, db = g sign(y)."""
    zero = zero_like(g)
    if y > zero:
        return g, g
    if y < zero:
        return g, -g
    return g * y, g * y


# ------------------------------------------------------------------ GRU: h = n + z (h_prev - n)
@cuda.jit(device=True)
def gru_forward(ar, az, an_x, q, h_prev):
    """(r, z, n, h) from the r and z pre-activations, n's input side and q = W_hn h + b_hn."""
    r, z = sigmoid(ar), sigmoid(az)
    n = math.tanh(an_x + r * q)
    return r, z, n, n + z * (h_prev - n)


@cuda.jit(device=True)
def gru_backward(g, r, z, n, q, h_prev):
    """(d ar, d az, d an) from dL/dh = g; the recurrent side of n gets r * d an, h_prev g * z."""
    one = one_like(g)
    dnp = g * (one - z) * (one - n * n)
    return dnp * q * r * (one - r), g * (h_prev - n) * z * (one - z), dnp


# ------------------------------------------------------------------ LSTM: c = f c_prev + i g, h = o tanh(c)
@cuda.jit(device=True)
def lstm_forward(ai, af, ag, ao, c_prev):
    """(i, f, g, o, c, h)."""
    i, f, g, o = sigmoid(ai), sigmoid(af), math.tanh(ag), sigmoid(ao)
    c = f * c_prev + i * g
    return i, f, g, o, c, o * math.tanh(c)


@cuda.jit(device=True)
def lstm_backward(dh, dc, i, f, g, o, c, c_prev):
    """(d ai, d af, d ag, d ao, dL/dc_prev) from dL/dh = dh, the carried dL/dc = dc and the
    cell states after (c) and before (c_prev) the step."""
    one = one_like(dh)
    tc = math.tanh(c)
    dcn = dc + dh * o * (one - tc * tc)
    return (dcn * g * i * (one - i), dcn * c_prev * f * (one - f), dcn * i * (one - g * g),
            dh * tc * o * (one - o), dcn * f)
