import os
import sys

# The CUDA kernels run on the CPU under Numba's CUDA simulator unless a real GPU run says
# otherwise (NUMBA_ENABLE_CUDASIM=0). Numba reads this when it is first imported, so it is set
# here, before any test module imports it. The simulator runs each CUDA thread as a Python
# thread: small GEMM tiles keep it quick.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
if os.environ["NUMBA_ENABLE_CUDASIM"] == "1":
    os.environ.setdefault("FASTRNN_CUDA_TILE", "4")
    # The simulator's launcher busy-polls its block threads while holding the GIL; with the
    # default 5 ms switch interval every syncthreads costs whole slices (measured: a tiny GRU
    # step 3.1 s at 5 ms, 0.9 s at 0.5 ms).
    sys.setswitchinterval(5e-4)

# tests import the reference as `naive` from this folder
sys.path.insert(0, os.path.dirname(__file__))


def _lock_simulator_shared_arrays():
    """numba-cuda's simulator creates a block's shared array when the first of its threads asks,
    with an unlocked check-then-create (kernelapi.FakeCUDAShared.array): two threads preempted
    in between get two different arrays, and a kernel that is right on a GPU reads the wrong
    tile. Seen here: 2 of 200 launches of our tiled GEMM at a 1 us switch interval, and about
    one simulator test in every four or five full runs. Same lookup, one atomic setdefault."""
    try:
        import traceback

        import numpy as np
        from numba.core import types
        from numba.cuda.simulator.kernelapi import FakeCUDAShared
        from numba.np import numpy_support
    except ImportError:
        return
    original = FakeCUDAShared.array

    def array(self, shape, dtype, alignment=None):
        if alignment is not None or shape == 0:
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        caller = traceback.extract_stack(sys._getframe())[-2][0:2]  # the kernel's line, as upstream
        return self._allocations.setdefault(caller, np.empty(shape, dtype))

    FakeCUDAShared.array = array


if os.environ["NUMBA_ENABLE_CUDASIM"] == "1":
    _lock_simulator_shared_arrays()
