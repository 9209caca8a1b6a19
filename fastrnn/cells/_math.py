"""Scalar helpers shared by the cell kernels."""
import math

from numba import njit

from ..config import CACHE, FASTMATH


@njit(cache=CACHE, fastmath=FASTMATH, inline="always")
def sigmoid(x):
    # exp(-x) overflows to inf for x << 0, and 1/(1+inf) = 0 is the right answer,
    # so no branch is needed (and no ninf flag may be set).
    return 1.0 / (1.0 + math.exp(-x))
