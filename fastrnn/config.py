"""Tunables shared by every kernel, in one place so that tests can see and patch them.

FASTMATH lists LLVM fast-math flags explicitly instead of ``fastmath=True``: we leave out
``nnan`` and ``ninf`` on purpose, because divergence detection relies on NaN and inf
propagating honestly through the kernels. ``afn`` (approximate functions) is left out too,
so that float64 kernels agree with the NumPy reference to ~1e-12.
"""

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}

# Compiled kernels are written to Numba's on-disk cache so that a second process starts fast.
CACHE = True
