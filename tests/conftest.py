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
