"""Weight initialization schemes for recurrent layers (PyTorch layout: gate blocks stacked
along the first axis of W_ih (G*H, I) and W_hh (G*H, H))."""
import numpy as np



def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))  # sign fix makes the distribution uniform (Haar)


def init_layer(rng, init, gates, hidden, inputs):
    """Return float64 (w_ih (G*H, I), w_hh (G*H, H), b_ih (G*H,), b_hh (G*H,)).

    pytorch     every entry U(-1/sqrt(H), 1/sqrt(H)), as torch.nn.RNN/GRU/LSTM
    xavier      each gate block Xavier-uniform, biases 0
    orthogonal  W_ih Xavier-uniform, each recurrent gate block orthogonal, biases 0
    irnn        each recurrent gate block the identity, W_ih ~ N(0, 0.001^2) (std 0.001),
                biases 0 (Le, Jaitly & Hinton 2015; meant for the ReLU cell)
    """
    G, H, I = gates, hidden, inputs
    if init == "pytorch":
        k = 1.0 / np.sqrt(H)
        u = lambda *s: rng.uniform(-k, k, size=s)  # noqa: E731
        return u(G * H, I), u(G * H, H), u(G * H), u(G * H)
    xav = lambda a, b: rng.uniform(-1, 1, size=(a, b)) * np.sqrt(6.0 / (a + b))  # noqa: E731
    if init == "irnn":
        w_ih = rng.normal(0.0, 0.001, size=(G * H, I))
    else:
        w_ih = np.concatenate([xav(H, I) for _ in range(G)])
    if init == "xavier":
        w_hh = np.concatenate([xav(H, H) for _ in range(G)])
    elif init == "orthogonal":
        w_hh = np.concatenate([_orthogonal(rng, H) for _ in range(G)])
    elif init == "irnn":
        w_hh = np.concatenate([np.eye(H) for _ in range(G)])
    else:
        raise ValueError(f"init: expected pytorch, xavier, orthogonal or irnn; got {init!r}")
    return w_ih, w_hh, np.zeros(G * H), np.zeros(G * H)


def spectral_radius(m):
    return float(np.max(np.abs(np.linalg.eigvals(m))))


def scale_spectral_radius(w_hh, hidden, radius):
    """Scale each H x H gate block of w_hh (in place) to the given spectral radius."""
    for k in range(w_hh.shape[0] // hidden):
        block = w_hh[k * hidden:(k + 1) * hidden]
        rho = spectral_radius(block)
        if rho > 0:
            block *= radius / rho
