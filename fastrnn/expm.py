"""The exponential of a skew-symmetric matrix and its Fréchet derivative's adjoint: what an
orthogonal recurrence W = expm(A) needs once per optimizer step (expRNN, fastrnn/cells/exprnn.py).

A (H, H) real with A^T = -A is parametrized by its strict upper triangle u (H(H-1)/2,), row by
row: A = U - U^T. iA is Hermitian, so one complex eigh gives A = V diag(mu) V^H with V unitary
and mu = -i lambda imaginary; then
    expm(A)           = V diag(e^mu) V^H                      (real, orthogonal)
    L(A, E)           = V ((V^H E V) * Phi) V^H               (Daleckii-Krein)
    Phi_jk            = (e^mu_j - e^mu_k) / (mu_j - mu_k),  e^mu_j where mu_j = mu_k
and the gradient through W = expm(A) is dL/dA = L(A^T, dL/dW) (the adjoint of L(A, .) is
L(A^T, .)), A^T = V diag(conj mu) V^H: the same V with conj(Phi). Phi is formed as
e^mu_k * expm1(d) / d, d = mu_j - mu_k, so close eigenvalues lose no digits. All in float64.
"""
import numpy as np


def skew(u, H):
    """A (H, H) float64 from its strict upper triangle u (H(H-1)/2,)."""
    A = np.zeros((H, H))
    A[np.triu_indices(H, 1)] = u
    return A - A.T


def triangle_grad(dA):
    """dL/du from dL/dA (H, H) for A = skew(u): dA_jk - dA_kj over the strict upper triangle."""
    H = dA.shape[0]
    return (dA - dA.T)[np.triu_indices(H, 1)]


class ExpSkew:
    """expm(A) and the adjoint of its Fréchet derivative at one skew-symmetric A."""

    def __init__(self, A):
        A = np.asarray(A, np.float64)
        if not np.isfinite(A).all():  # a diverged run: NaN out, for the loss to say so (not a LinAlgError)
            H = A.shape[0]
            self.V, self.mu = np.full((H, H), np.nan + 0j), np.full(H, np.nan + 0j)
            self.phi, self.W = np.full((H, H), np.nan + 0j), np.full((H, H), np.nan)
            return
        lam, self.V = np.linalg.eigh(1j * A)
        self.mu = -1j * lam  # A's eigenvalues, on the imaginary axis
        e = np.exp(self.mu)
        d = self.mu[:, None] - self.mu[None, :]
        safe = np.where(d == 0, 1.0, d)
        self.phi = np.where(d == 0, e[None, :], e[None, :] * np.expm1(d) / safe)
        self.W = ((self.V * e) @ self.V.conj().T).real

    def adjoint(self, G):
        """L(A^T, G) (H, H) real: dL/dA for dL/dW = G."""
        V = self.V
        return (V @ ((V.conj().T @ G @ V) * self.phi.conj()) @ V.conj().T).real
