"""expRNN (Lezcano-Casado & Martínez-Rubio 2019): an orthogonal recurrence, W = expm(A).

    h_t = modrelu(W_ih x_t + b_ih + W h_{t-1}; b_hh)      modrelu(z; b) = sign(z) relu(|z| + b)
    W = expm(A), A = U - U^T skew-symmetric               weight_hh: U's strict upper triangle
W is orthogonal whatever A is, so the step's linear part keeps the state's norm: the gradient
through time neither vanishes nor explodes through W (only through modReLU's zeros). W is
computed once per forward pass, on the host (fastrnn/expm.py: one real H x H eigh, of A^2), and
dL/dA comes from dL/dW through the adjoint of the exponential's Fréchet derivative.
bias_hh is modReLU's own bias b (per unit), not a summand; bias_ih is an additive input bias
(the paper's input kernel has none: it starts at 0). Init ``henaff`` (the paper's): A block
diagonal with 2 x 2 blocks [[0, t], [-t, 0]], t ~ U(-pi, pi); W_ih He-normal (std sqrt(2 / I)),
b ~ U(-0.01, 0.01) (the reference code's). torch.nn has no such module (bench/torch_cells.py).
Kernels: fastrnn/cpu/exprnn.py (the Elman loop with modReLU; W is a dense matrix to them).
"""
from .base import Cell

HENAFF = "henaff"


class Orthogonal:
    """W = expm(A), A skew-symmetric, stored as A's strict upper triangle (H(H-1)/2,)."""
    name = "orthogonal"
    inits = (HENAFF,)
    one_pass = False  # W_hh's gradient goes through the exponential: apart from W_ih's
    bounded = False
    product = True

    @staticmethod
    def shape(G, H):
        return (H * (H - 1) // 2,)

    @staticmethod
    def scale(u, H, radius):
        raise ValueError(f"spectral_radius: an orthogonal recurrence's is 1 by construction; leave it out "
                         f"(got {radius})")

    @staticmethod
    def exp(u, H):
        """The ExpSkew of A = skew(u): W (H, H) float64 and the gradient's adjoint."""
        from ..expm import ExpSkew, skew

        return ExpSkew(skew(u, H))

    @staticmethod
    def matrix(u, H):
        return Orthogonal.exp(u, H).W

    @staticmethod
    def blocks(u, H):
        import numpy as np

        from ..init import spectral_radius

        W = Orthogonal.matrix(u, H)
        return [(float(np.linalg.norm(W, 2)), spectral_radius(W))]

    @staticmethod
    def radii(u, H):
        from ..init import spectral_radius

        return [spectral_radius(Orthogonal.matrix(u, H))]

    @staticmethod
    def weight_grad(be, tape, dpre, hs, out, sums=None):
        """out = dL/du: dL/dW = dpre^T hs (a GEMM on the backend), then, on the host, through
        the exponential (tape.exp, the forward's ExpSkew) and onto the triangle."""
        import numpy as np

        from ..expm import triangle_grad

        H = hs.shape[1]
        dW = be.empty((H, H), dpre.dtype)
        be.matmul_tn(dpre, hs, dW)
        du = triangle_grad(tape.exp.adjoint(np.asarray(be.to_host(dW), np.float64)))
        be.copy_into(out, du.astype(dpre.dtype))


def init(rng, init, G, H, I):
    """(w_ih, u, b_ih, b_hh) float64 by the paper's henaff init (module docstring)."""
    import numpy as np

    A = np.zeros((H, H))
    t = rng.uniform(-np.pi, np.pi, H // 2)
    k = np.arange(H // 2) * 2
    A[k, k + 1] = t
    u = A[np.triu_indices(H, 1)]
    w_ih = rng.normal(0.0, np.sqrt(2.0 / I), (G, I))
    return w_ih, u, np.zeros(G), rng.uniform(-0.01, 0.01, G)


EXPRNN = Cell("exprnn", 1, "h", ("modrelu",), "exprnn",
              "h = modrelu(W_ih x + b_ih + expm(A) h_prev; b_hh), modrelu(z; b) = sign(z) relu(|z| + b), "
              "A skew-symmetric from weight_hh, its strict upper triangle row by row (Lezcano-Casado & "
              "Martinez-Rubio 2019)",
              recurrence=Orthogonal, gate_tape=False, split_grad=True, act_bias=True, inits=(HENAFF,),
              default_init=HENAFF, init_fn=init, color="tab:brown")
