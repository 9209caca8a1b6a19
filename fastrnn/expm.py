"""The exponential of a skew-symmetric matrix and its Fréchet derivative's adjoint: what an
orthogonal recurrence W = expm(A) needs once per optimizer step (expRNN, fastrnn/cells/exprnn.py).

A (H, H) real with A^T = -A is parametrized by its strict upper triangle u (H(H-1)/2,), row by
row: A = U - U^T. The exponential's even and odd terms are power series in S = A^2:

    expm(A) = f(S) + A g(S),    f(x) = sum x^k / (2k)!  = cos(sqrt(-x)),
                                g(x) = sum x^k / (2k+1)! = sinc(sqrt(-x)),

(true for any square A), and for a skew A, S = -A^T A is real symmetric with eigenvalues
-theta^2 <= 0 (A's are +-i theta). So one *real* symmetric eigh, S = Q diag(lam) Q^T, gives

    expm(A) = (Q cos(theta) + A Q sinc(theta)) Q^T

where the complex Hermitian eigh of iA it replaces cost 2-4x as much at H = 128 (bench/PROFILE.md).
f and g are entire functions of S, so A's repeated eigenvalue pairs (+-i theta, a double
eigenvalue of S) need no care: any orthonormal basis of S's eigenspaces gives the same f(S).

The gradient, dL/dA from G = dL/dW, is reverse-mode through those three lines:
    dA = G g(S) + dS A^T + A^T dS,   dS = Q (F * (Q^T G Q) + D * ((A Q)^T G Q)) Q^T
with F, D the divided differences of f and g on S's eigenvalues (Daleckii-Krein: the
derivative of a function of a symmetric matrix, self-adjoint since F and D are real):
    F_jk = (f(lam_j) - f(lam_k)) / (lam_j - lam_k) = sinc(s) sinc(d) / 2,  s, d = (theta_j +- theta_k) / 2
exactly, with no cancellation; D by whichever of three forms loses no digits for the pair
(divided_differences). The result is the full matrix derivative, as L(A^T, G) is; triangle_grad then
takes the parametrization's share. All in float64.
"""
import numpy as np
from numba import njit

from .config import CACHE, ERROR_MODEL

TAYLOR_BELOW = 1.0  # D's series where both angles are under this (10 terms: 2e-19 relative)
TAYLOR_TERMS = 10
SINC_SERIES_BELOW = 1e-2  # sinc(d)'s series (5 terms: the next is d^10 / 11!, 3e-28) under this


def skew(u, H):
    """A (H, H) float64 from its strict upper triangle u (H(H-1)/2,)."""
    A = np.zeros((H, H))
    A[np.triu_indices(H, 1)] = u
    return A - A.T


def triangle_grad(dA):
    """dL/du from dL/dA (H, H) for A = skew(u): dA_jk - dA_kj over the strict upper triangle."""
    H = dA.shape[0]
    return (dA - dA.T)[np.triu_indices(H, 1)]


@njit(cache=CACHE, error_model=ERROR_MODEL)
def divided_differences(theta, F, D):
    """F, D (H, H): the divided differences of f(lam) = cos(sqrt(-lam)) and g(lam) =
    sinc(sqrt(-lam)) at lam = -theta^2 (theta >= 0), their derivatives where lam_j = lam_k;
    returns sinc(theta) (H,), which D's apart form reads (the exponential needs it too).
    With a = theta_j, b = theta_k, s = (a + b) / 2, d = (a - b) / 2:
      F = sinc(s) sinc(d) / 2, exactly (cos a - cos b = -2 sin s sin d, b^2 - a^2 = -4 s d);
      D, by whichever form loses no digits for the pair:
        both under TAYLOR_BELOW: -sum_{n>=1} (-1)^n h_{n-1}(a^2, b^2) / (2n+1)!, h_m the
          complete homogeneous polynomial (a^2)^m + (a^2)^(m-1) b^2 + ... + (b^2)^m;
        close (the smaller at least half the larger): (cos d sinc s - cos s sinc d) / (2 a b)
          (no cancellation as a -> b; s >= 3/8 here, so its numerator keeps all but a digit);
        apart: (sinc a - sinc b) / (b^2 - a^2), its denominator at least 3/4 of max(a, b)^2.
    No trigonometric call per pair: sin and cos of s and d come from those of a/2 and b/2 by
    the sum formulas (all terms of sin s and cos d are >= 0 for angles up to pi), and sinc d
    from its series where |d| < SINC_SERIES_BELOW (sin d, a difference, would lose digits)."""
    H = theta.shape[0]
    sh, ch, sa = np.empty(H), np.empty(H), np.empty(H)
    for j in range(H):
        sh[j], ch[j] = np.sin(theta[j] / 2), np.cos(theta[j] / 2)
        sa[j] = np.sin(theta[j]) / theta[j] if theta[j] != 0 else 1.0
    for j in range(H):
        for k in range(j, H):
            a, b = theta[j], theta[k]
            s, d = (a + b) / 2, (a - b) / 2
            sin_s = sh[j] * ch[k] + ch[j] * sh[k]
            sinc_s = sin_s / s if s != 0 else 1.0
            if abs(d) < SINC_SERIES_BELOW:
                d2 = d * d
                sinc_d = 1 - d2 / 6 * (1 - d2 / 20 * (1 - d2 / 42 * (1 - d2 / 72)))
            else:
                sinc_d = (sh[j] * ch[k] - ch[j] * sh[k]) / d
            F[j, k] = F[k, j] = sinc_s * sinc_d / 2
            hi, lo = max(a, b), min(a, b)
            if hi < TAYLOR_BELOW:
                u, v = a * a, b * b
                h, vm, acc, fact, sign = 1.0, 1.0, 0.0, 1.0, -1.0
                for n in range(1, TAYLOR_TERMS + 1):
                    fact *= (2 * n) * (2 * n + 1)
                    if n > 1:
                        vm *= v
                        h = u * h + vm  # h_{n-1} = u h_{n-2} + v^(n-1)
                    acc += sign * h / fact
                    sign = -sign
                D[j, k] = D[k, j] = -acc
            elif 2 * lo >= hi:
                cos_s = ch[j] * ch[k] - sh[j] * sh[k]
                cos_d = ch[j] * ch[k] + sh[j] * sh[k]
                D[j, k] = D[k, j] = (cos_d * sinc_s - cos_s * sinc_d) / (2 * a * b)
            else:
                D[j, k] = D[k, j] = (sa[j] - sa[k]) / (b * b - a * a)
    return sa


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _exponential(A, F, D):
    """(W, Q, AQ, sinc(theta)) for a finite skew A (H, H); F, D filled (divided_differences).
    In Numba rather than NumPy so that the products and the eigh run on the LAPACK and BLAS
    that Numba calls, which threads.configure pins to one thread: NumPy's own BLAS threads,
    left spinning after a call, took the core of the pool thread that runs the next kernel's
    share (an expRNN step at H = 128 spent ~5 ms waiting for that share)."""
    S = A @ A
    lam, Q = np.linalg.eigh((S + S.T) / 2)  # symmetric to the last bit, as eigh reads one triangle
    theta = np.sqrt(np.maximum(-lam, 0.0))  # rounding can leave a zero eigenvalue at +1e-16
    sinc = divided_differences(theta, F, D)
    AQ = A @ Q
    W = (Q * np.cos(theta) + AQ * sinc) @ Q.T
    return W, Q, AQ, sinc


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _adjoint(A, Q, AQ, sinc, F, D, G):
    """dL/dA (H, H) for dL/dW = G (module docstring): 8 products of H x H."""
    GQ = G @ Q
    dS = Q @ (F * (Q.T @ GQ) + D * (AQ.T @ GQ)) @ Q.T
    return (GQ * sinc) @ Q.T + dS @ A.T + A.T @ dS


class ExpSkew:
    """expm(A) and the adjoint of its Fréchet derivative at one skew-symmetric A."""

    def __init__(self, A):
        A = np.ascontiguousarray(A, np.float64)
        H = A.shape[0]
        self.A = A
        self.F, self.D = np.empty((H, H)), np.empty((H, H))
        if not np.isfinite(A).all():  # a diverged run: NaN out, for the loss to say so (not a LinAlgError)
            self.W = self.Q = self.AQ = np.full((H, H), np.nan)
            self.sinc = np.full(H, np.nan)
            self.F[...] = self.D[...] = np.nan
            return
        self.W, self.Q, self.AQ, self.sinc = _exponential(A, self.F, self.D)

    def adjoint(self, G):
        """L(A^T, G) (H, H) real: dL/dA for dL/dW = G."""
        return _adjoint(self.A, self.Q, self.AQ, self.sinc, self.F, self.D, np.ascontiguousarray(G, np.float64))
