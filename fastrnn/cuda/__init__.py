"""The CUDA target (numba-cuda): the same cells, BPTT, losses and optimizers on an NVIDIA GPU.

Imported only for ``--device cuda``; a CPU-only install never loads it. Without numba-cuda, a
GPU or a driver, :func:`require` raises one clear ValueError. Tests run the kernels on the CPU
under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1).
"""
import os


def status():
    """(usable, description): whether --device cuda can run here, and why not."""
    try:
        import numba_cuda  # noqa: F401  (the maintained CUDA target; Numba's built-in one is deprecated)
        from numba import cuda
    except ImportError:
        return False, "numba-cuda is not installed (pip install 'fastrnn[cuda]')"
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return True, "the CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
    try:
        if not cuda.is_available():
            return False, "no usable NVIDIA GPU or driver (numba.cuda.is_available() is false)"
        name = cuda.get_current_device().name
        return True, name.decode() if isinstance(name, bytes) else str(name)
    except Exception as e:  # noqa: BLE001 - a broken driver reports in many ways
        return False, f"CUDA could not be initialized ({e})"


def require():
    ok, why = status()
    if not ok:
        raise ValueError(f"device: cuda is not usable here: {why}")
    return why
