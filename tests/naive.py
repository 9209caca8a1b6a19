"""Slow, obvious float64 NumPy reference for every cell, forward and BPTT.

Deliberately organised differently from the kernels: one step of one layer at a time,
the reverse sweep runs time-major (all layers at step t, then step t-1), and truncation is
the tutorial's nested loop: for each step t with a loss, propagate back over t, t-1, ..., t-K.
"""
import numpy as np


GATES = {"tanh": 1, "relu": 1, "gru": 3, "lstm": 4, "indrnn": 1, "exprnn": 1, "lnlstm": 4}  # blocks of weight_ih's rows
EPS = 1e-5  # the LayerNorm's


def layer_norm(v):
    """(v - mean) / sqrt(var + EPS) along each row of v (N, n)."""
    return (v - v.mean(1, keepdims=True)) / np.sqrt(v.var(1, keepdims=True) + EPS)


def layer_norm_vjp(v, y):
    """y J for each row, J the LayerNorm's Jacobian written out entry by entry:
    d out_i / d v_j = (delta_ij - 1/n) / s - (v_i - m)(v_j - m) / (n s^3), s = sqrt(var + EPS)."""
    n = v.shape[1]
    out = np.empty_like(v)
    for r in range(v.shape[0]):
        m, s = v[r].mean(), np.sqrt(v[r].var() + EPS)
        dev = v[r] - m
        J = (np.eye(n) - 1.0 / n) / s - np.outer(dev, dev) / (n * s ** 3)
        out[r] = y[r] @ J
    return out


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def expm(A):
    """The textbook matrix exponential: scale to norm < 1/2, 30 Taylor terms, square back."""
    s = max(0, int(np.ceil(np.log2(max(np.abs(A).sum(1).max(), 1e-300)))) + 1)
    M = A / 2.0 ** s
    out, term = np.eye(len(A)), np.eye(len(A))
    for n in range(1, 30):
        term = term @ M / n
        out = out + term
    for _ in range(s):
        out = out @ out
    return out


def skew(u, H):
    """A = U - U^T, U's strict upper triangle u row by row."""
    A = np.zeros((H, H))
    k = 0
    for i in range(H):
        for j in range(i + 1, H):
            A[i, j], A[j, i] = u[k], -u[k]
            k += 1
    return A


def params_of(model):
    """Parameters as float64; an exprnn layer's weight_hh as the matrix expm(A) itself (its
    gradient is turned back onto A's triangle by grad_of_triangle)."""
    p = {k: np.array(a, dtype=np.float64) for k, a in model.params.items()}
    if model.cell.name == "exprnn":
        H = model.hidden_size
        for k in list(p):
            if k.startswith("weight_hh"):
                p["A" + k[len("weight_hh"):]] = skew(p[k], H)
                p[k] = expm(p["A" + k[len("weight_hh"):]])
    return p


def grad_of_triangle(A, dW):
    """dL/du for W = expm(A), A = skew(u), from dL/dW: the Fréchet derivative L(A^T, dW) read
    off the exponential of the block matrix [[A^T, dW], [0, A^T]] (its top right block), then
    dA_ij - dA_ji over the strict upper triangle."""
    H = len(A)
    big = np.block([[A.T, dW], [np.zeros((H, H)), A.T]])
    dA = expm(big)[:H, H:]
    return np.array([dA[i, j] - dA[j, i] for i in range(H) for j in range(i + 1, H)])


def step_forward(cell, p, k, x, h, c):
    """One step of layer k. x (B, I), h, c (B, H). Returns h', c', cache."""
    H = h.shape[1]
    gi = x @ p[f"weight_ih_l{k}"].T + p[f"bias_ih_l{k}"]
    if cell == "indrnn":  # weight_hh is a vector u: each unit sees only its own past
        hn = np.maximum(gi + p[f"weight_hh_l{k}"] * h + p[f"bias_hh_l{k}"], 0.0)
        return hn, c, (x, h, c, hn)
    if cell == "exprnn":  # bias_hh is modReLU's b, not a summand: gh without it
        z = gi + h @ p[f"weight_hh_l{k}"].T
        hn = np.sign(z) * np.maximum(np.abs(z) + p[f"bias_hh_l{k}"], 0.0)
        return hn, c, (x, h, c, (z, hn))
    gh = h @ p[f"weight_hh_l{k}"].T + p[f"bias_hh_l{k}"]
    if cell == "tanh":
        hn = np.tanh(gi + gh)
        return hn, c, (x, h, c, hn)
    if cell == "relu":
        hn = np.maximum(gi + gh, 0.0)
        return hn, c, (x, h, c, hn)
    if cell == "gru":
        r = sig(gi[:, :H] + gh[:, :H])
        z = sig(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        hn = (1 - z) * n + z * h
        return hn, c, (x, h, c, (r, z, n, gh[:, 2 * H:]))
    if cell == "lnlstm":  # each side normalized before its bias: W x and W h alone
        wx, wh = x @ p[f"weight_ih_l{k}"].T, h @ p[f"weight_hh_l{k}"].T
        a = (layer_norm(wx) * p[f"gain_ih_l{k}"] + p[f"bias_ih_l{k}"]
             + layer_norm(wh) * p[f"gain_hh_l{k}"] + p[f"bias_hh_l{k}"])
        i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
        cn = f * c + i * g
        nc = layer_norm(cn) * p[f"gain_c_l{k}"] + p[f"bias_c_l{k}"]
        return o * np.tanh(nc), cn, (x, h, c, (i, f, g, o, cn, wx, wh, nc))
    if cell != "lstm":
        raise ValueError(f"naive: no reference for cell {cell!r}; add its step here")
    a = gi + gh
    i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
    cn = f * c + i * g
    hn = o * np.tanh(cn)
    return hn, cn, (x, h, c, (i, f, g, o, cn))


def step_backward(cell, p, k, cache, dh, dc, live, grads):
    """Backward of one step of layer k; rows where live is False were frozen (identity).
    Accumulates parameter gradients into grads. Returns dx, dh_prev, dc_prev."""
    x, h, c, aux = cache
    m = live[:, None].astype(float)
    dc_prev = dc
    if cell in ("tanh", "relu", "indrnn"):
        hn = aux
        da = dh * ((1 - hn ** 2) if cell == "tanh" else (hn > 0))
        dgi = dgh = da * m
    elif cell == "exprnn":
        z, hn = aux
        live_unit = np.abs(z) + p[f"bias_hh_l{k}"] > 0
        dgi = dgh = dh * live_unit * m
        grads[f"bias_hh_l{k}"] += (dh * np.sign(z) * live_unit * m).sum(0)
        grads[f"bias_hh_l{k}"] -= dgh.sum(0)  # undone below: b is not a summand
    elif cell == "gru":
        r, z, n, hn_ = aux
        dn = dh * (1 - z) * (1 - n ** 2)
        dz = dh * (h - n) * z * (1 - z)
        dr = dn * hn_ * r * (1 - r)
        dgi = np.concatenate([dr, dz, dn], axis=1) * m
        dgh = np.concatenate([dr, dz, dn * r], axis=1) * m
    elif cell == "lstm":
        i, f, g, o, cn = aux
        tc = np.tanh(cn)
        dct = dc + dh * o * (1 - tc ** 2)
        da = np.concatenate([dct * g * i * (1 - i), dct * c * f * (1 - f),
                             dct * i * (1 - g ** 2), dh * tc * o * (1 - o)], axis=1)
        dgi = dgh = da * m
        dc_prev = np.where(live[:, None], dct * f, dc)
    elif cell == "lnlstm":
        i, f, g, o, cn, wx, wh, nc = aux
        dnc = dh * o * (1 - np.tanh(nc) ** 2) * m
        grads[f"gain_c_l{k}"] += (dnc * layer_norm(cn)).sum(0)
        grads[f"bias_c_l{k}"] += dnc.sum(0)
        dct = dc + layer_norm_vjp(cn, dnc * p[f"gain_c_l{k}"])
        da = np.concatenate([dct * g * i * (1 - i), dct * c * f * (1 - f),
                             dct * i * (1 - g ** 2), dh * np.tanh(nc) * o * (1 - o)], axis=1) * m
        for side, v in (("ih", wx), ("hh", wh)):
            grads[f"bias_{side}_l{k}"] += da.sum(0)  # each side's shift is a summand of the gates
            grads[f"gain_{side}_l{k}"] += (da * layer_norm(v)).sum(0)
        dgi = layer_norm_vjp(wx, da * p[f"gain_ih_l{k}"])
        dgh = layer_norm_vjp(wh, da * p[f"gain_hh_l{k}"])
        dc_prev = np.where(live[:, None], dct * f, dc)
    else:
        raise ValueError(f"naive: no reference for cell {cell!r}; add its step here")
    grads[f"weight_ih_l{k}"] += dgi.T @ x
    if cell != "lnlstm":  # there the biases sit after the LayerNorms (above)
        grads[f"bias_ih_l{k}"] += dgi.sum(0)
        grads[f"bias_hh_l{k}"] += dgh.sum(0)
    dx = dgi @ p[f"weight_ih_l{k}"]
    if cell == "indrnn":  # d(u * h)/du = h, d(u * h)/dh = u, unit by unit
        grads[f"weight_hh_l{k}"] += (dgh * h).sum(0)
        dh_prev = dgh * p[f"weight_hh_l{k}"]
    else:
        grads[f"weight_hh_l{k}"] += dgh.T @ h
        dh_prev = dgh @ p[f"weight_hh_l{k}"]
    if cell == "gru":
        dh_prev = dh_prev + dh * z * m
    dh_prev = np.where(live[:, None], dh_prev, dh)
    return dx, dh_prev, dc_prev


def forward(cell, p, L, x, lengths, h0=None, c0=None, masks=None):
    """x (T, B, I) float64 (one-hot for token models); masks[k] (T, B, H) multiplies layer
    k's output on its way to layer k+1 (dropout). Returns per-step caches [t][k], states
    hs[k] (T+1, B, H) and cs[k]."""
    T, B, _ = x.shape
    H = p["weight_ih_l0"].shape[0] // GATES[cell]
    hs = [np.zeros((T + 1, B, H)) for _ in range(L)]
    cs = [np.zeros((T + 1, B, H)) for _ in range(L)]
    for k in range(L):
        if h0 is not None:
            hs[k][0] = h0[k]
        if c0 is not None:
            cs[k][0] = c0[k]
    caches = []
    for t in range(T):
        live = t < lengths
        inp, row = x[t], []
        for k in range(L):
            hn, cn, cache = step_forward(cell, p, k, inp, hs[k][t], cs[k][t])
            hs[k][t + 1] = np.where(live[:, None], hn, hs[k][t])
            cs[k][t + 1] = np.where(live[:, None], cn, cs[k][t])
            row.append(cache)
            inp = hs[k][t + 1] if masks is None or k == L - 1 else hs[k][t + 1] * masks[k][t]
        caches.append(row)
    return caches, hs, cs


def loss_and_dy(loss, y, target, valid):
    """y (N, O); returns mean loss over counted rows and dL/dy."""
    if loss == "mse":
        n = valid.sum() * y.shape[1]
        d = (y - target) * valid[:, None]
        return (d ** 2).sum() / n, 2 * d / n
    valid = valid & (target >= 0)
    n = valid.sum()
    e = np.exp(y - y.max(1, keepdims=True))
    pr = e / e.sum(1, keepdims=True)
    tot, dy = 0.0, np.zeros_like(y)
    for r in np.nonzero(valid)[0]:
        tot -= np.log(pr[r, target[r]])
        dy[r] = pr[r]
        dy[r, target[r]] -= 1
    return tot / n, dy / n


def loss_and_grad(model, x, target, loss, output, lengths=None, K=None, masks=None):
    """Reference of RNN.loss_and_grad. Returns (loss, {name: grad}, outputs)."""
    cell, L = model.cell.name, model.num_layers
    p = params_of(model)
    if model.tokens:
        x = np.eye(model.input_size)[np.asarray(x)]
    x = np.asarray(x, np.float64)
    T, B, _ = x.shape
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    caches, hs, cs = forward(cell, p, L, x, lengths, masks=masks)
    W, bo = p["readout.weight"], p["readout.bias"]
    if output == "all":
        y = np.stack([hs[-1][t + 1] @ W.T + bo for t in range(T)])  # (T, B, O)
        valid = np.arange(T)[:, None] < lengths[None, :]
        val, dy = loss_and_dy(loss, y.reshape(T * B, -1), np.asarray(target).reshape(T * B, -1).squeeze(-1)
                              if loss == "ce" else np.asarray(target).reshape(T * B, -1), valid.reshape(-1))
        dy = dy.reshape(T, B, -1)
        # arrivals[t] is dL/dh^{top}_t from the readout
        arrivals = dy @ W
        gW = sum(dy[t].T @ hs[-1][t + 1] for t in range(T))
        gb = dy.sum((0, 1))
    else:
        y = np.stack([hs[-1][lengths[b], b] for b in range(B)]) @ W.T + bo
        val, dy = loss_and_dy(loss, y, np.asarray(target), np.ones(B, bool))
        arrivals = np.zeros((T, B, W.shape[1]))
        for b in range(B):
            arrivals[lengths[b] - 1, b] = dy[b] @ W
        gW = dy.T @ np.stack([hs[-1][lengths[b], b] for b in range(B)])
        gb = dy.sum(0)
    grads = {k: np.zeros_like(a) for k, a in p.items()}
    grads["readout.weight"], grads["readout.bias"] = gW, gb

    def sweep(s0, s1, arr):
        dh = [np.zeros((B, W.shape[1])) for _ in range(L)]
        dc = [np.zeros((B, W.shape[1])) for _ in range(L)]
        for t in range(s1, s0 - 1, -1):
            above = arr[t]
            for k in reversed(range(L)):
                dx, dh[k], dc[k] = step_backward(cell, p, k, caches[t][k], dh[k] + above, dc[k],
                                                 t < lengths, grads)
                above = dx if masks is None or k == 0 else dx * masks[k - 1][t]

    if K is None:
        sweep(0, T - 1, arrivals)
    else:
        for t in range(T):  # the tutorial's loop: each step's loss flows back at most K steps
            if np.any(arrivals[t]):
                only = np.zeros_like(arrivals)
                only[t] = arrivals[t]
                sweep(max(0, t - K), t, only)
    if cell == "exprnn":
        for k in [k for k in p if k.startswith("A")]:
            grads.pop(k)
            name = "weight_hh" + k[1:]
            grads[name] = grad_of_triangle(p[k], grads[name])
    return val, grads, y, (hs, cs)
