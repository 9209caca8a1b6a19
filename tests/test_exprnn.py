"""expRNN's own parts: the skew-symmetric exponential and its gradient against the textbook
ones (tests/naive.py), the paper's init, and a recurrence that stays orthogonal in training.
Forward, BPTT, finite differences, the simulator, PTX and PyTorch run it from the registry."""
import numpy as np
import pytest

import naive
from fastrnn import RNN
from fastrnn.expm import ExpSkew, skew, triangle_grad


def agrees_with_naive(A, rng, atol_w, atol_grad):
    """ExpSkew(A)'s W against the Taylor exponential (and orthogonal to 1e-13), and its
    gradient for a random dL/dW against the block-matrix Frechet derivative."""
    H = A.shape[0]
    e = ExpSkew(A)
    np.testing.assert_allclose(e.W, naive.expm(A), atol=atol_w)
    np.testing.assert_allclose(e.W @ e.W.T, np.eye(H), atol=1e-13)
    G = rng.standard_normal((H, H))
    np.testing.assert_allclose(triangle_grad(e.adjoint(G)), naive.grad_of_triangle(A, G), atol=atol_grad)


@pytest.mark.parametrize("H,scale", [(1, 1.0), (2, 3.0), (7, 1.0), (8, 4.0), (9, 1e-9)])
def test_exponential_and_its_adjoint_against_taylor_and_the_block_matrix(H, scale):
    rng = np.random.default_rng(H)
    u = rng.standard_normal(H * (H - 1) // 2) * scale
    A = skew(u, H)
    np.testing.assert_array_equal(A, naive.skew(u, H))
    agrees_with_naive(A, rng, atol_w=1e-12, atol_grad=1e-11)


def test_repeated_eigenvalues():
    """The henaff init repeats no angle, but A = 0 (every eigenvalue 0) and a block repeated
    twice must still give exact gradients."""
    G = np.random.default_rng(0).standard_normal((4, 4))
    for A in (np.zeros((4, 4)), skew(np.array([1.0, 0, 0, 0, 0, 1.0]), 4)):
        np.testing.assert_allclose(triangle_grad(ExpSkew(A).adjoint(G)), naive.grad_of_triangle(A, G), atol=1e-12)


def test_divided_differences_in_every_regime():
    """expm.py's F and D (the divided differences of f(lam) = cos(sqrt(-lam)) and g(lam) =
    sinc(sqrt(-lam))) against independent forms: F from the sines and cosines themselves (apart
    pairs; the derivative on the diagonal), and g(lam) = int_0^1 cos(t sqrt(-lam)) dt, whose
    divided difference is int_0^1 t^2 sinc(t s) sinc(t d) / 2 dt (60-node Gauss-Legendre),
    across the series, the close and the apart forms and the borders between them."""
    from fastrnn.expm import SINC_SERIES_BELOW, TAYLOR_BELOW, divided_differences

    x, w = np.polynomial.legendre.leggauss(60)
    t, w = (x + 1) / 2, w / 2

    def sinc(z):
        return np.sinc(z / np.pi)

    b, c = TAYLOR_BELOW, 2 * SINC_SERIES_BELOW
    theta = np.array([0, 1e-9, 1e-4, 0.3, b / 2 - 1e-9, b / 2, b - 1e-9, b, b + 1e-9, 1.5, 1.5 + c - 1e-9, 1.5 + c,
                      2 - 1e-7, 2, 2 + 1e-7, 2 + 2e-5, 2 + 2e-4, 2 + 2e-3, np.pi, 5, 10, 20])
    F, D = np.empty((len(theta),) * 2), np.empty((len(theta),) * 2)
    divided_differences(theta, F, D)
    ref = np.array([[np.sum(w * t**2 * sinc(t * (p + q) / 2) * sinc(t * (p - q) / 2) / 2) for q in theta] for p in theta])
    np.testing.assert_allclose(D, ref, rtol=1e-12, atol=1e-16)
    a, bb = np.meshgrid(theta.astype(np.longdouble), theta.astype(np.longdouble), indexing="ij")
    apart = np.abs(a * a - bb * bb) > 1e-4  # in 80-bit arithmetic, the difference of cosines keeps 1e-14 here
    ref = (np.cos(a[apart]) - np.cos(bb[apart])) / (bb[apart] ** 2 - a[apart] ** 2)
    np.testing.assert_allclose(F[apart], ref.astype(np.float64), rtol=1e-13)
    np.testing.assert_allclose(np.diag(F), sinc(theta) / 2, rtol=1e-15)


def test_clustered_and_bordering_angles():
    """A skew A built from chosen angles (a rotation of 2 x 2 blocks): pairs 1e-10 apart, a
    zero angle, angles at the divided differences' borders; W and the gradient against the
    Taylor exponential and the block-matrix Frechet derivative."""
    rng = np.random.default_rng(5)
    angles = [0.5, 0.5 + 1e-10, 1.0, 1.0 - 1e-12, 2.0, 2.0 + 1e-7, 3.0, 0.0]
    H = 2 * len(angles) + 1  # odd: one more zero eigenvalue
    blocks = np.zeros((H, H))
    for k, a in enumerate(angles):
        blocks[2 * k, 2 * k + 1], blocks[2 * k + 1, 2 * k] = a, -a
    Q, _ = np.linalg.qr(rng.standard_normal((H, H)))
    A = Q @ blocks @ Q.T
    A = (A - A.T) / 2
    agrees_with_naive(A, rng, atol_w=1e-13, atol_grad=1e-12)


def test_henaff_init():
    m = RNN("exprnn", 3, 7, 1, dtype="float64", seed=0)
    A = skew(m.params["weight_hh_l0"], 7)
    upper = np.triu(A, 1)
    assert np.count_nonzero(upper) == 3  # the 2 x 2 blocks' corners (0,1), (2,3), (4,5); unit 6 alone
    assert all(upper[k, k + 1] != 0 and abs(upper[k, k + 1]) <= np.pi for k in (0, 2, 4))
    b = m.params["bias_hh_l0"]
    assert np.abs(b).max() <= 0.01 and not m.params["bias_ih_l0"].any()


def test_stays_orthogonal_while_training():
    from fastrnn.train.config import TrainConfig
    from fastrnn.train.loop import build
    from fastrnn import watch

    task, m = build(TrainConfig(task="adding", cell="exprnn", seq_len=10, hidden=6, layers=2))
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y, _ = task.batch(rng, 8)
        g = m.loss_and_grad(x, y).grad
        m.clip_grad_norm(1.0)
        m.flat -= np.float32(0.05) * g
    rec = watch.record(m, task)
    assert [r["radius"] for r in rec["recurrence"]["radius"]] == pytest.approx([1, 1], abs=1e-6)
    assert m.params["weight_hh_l0"].std() > 0.1


def test_a_diverged_recurrence_reads_nan_not_a_linalg_error():
    m = RNN("exprnn", 2, 4, 1, dtype="float64")
    m.params["weight_hh_l0"][0] = np.inf
    x = np.ones((3, 2, 2))
    assert np.isnan(m.loss(x, np.zeros((2, 1))))


def test_spectral_radius_is_refused():
    with pytest.raises(ValueError, match="spectral_radius: an orthogonal recurrence's is 1 by construction"):
        RNN("exprnn", 2, 4, 1, spectral_radius=0.9)
    with pytest.raises(ValueError, match="init: the exprnn cell takes one of henaff"):
        RNN("exprnn", 2, 4, 1, init="orthogonal")
