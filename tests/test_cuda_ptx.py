"""Every CUDA kernel compiles for a real GPU (PTX, compute capability 8.0), in CI without one,
and its float32 version computes in float32: the simulator runs the kernels as Python and
never types or lowers them."""
import importlib.util
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # real processes, the simulator or a cluster: not in the fast lane

HERE = os.path.dirname(__file__)


def test_every_kernel_compiles_to_ptx():
    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda is not installed: pip install '.[test-full]' to run them")
    if importlib.util.find_spec("nvidia.cuda_nvcc") is None or importlib.util.find_spec("nvidia.cuda_nvrtc") is None:
        pytest.skip("NVVM/NVRTC wheels (nvidia-cuda-nvcc-cu12, nvidia-cuda-nvrtc-cu12) are not installed: "
                    "pip install '.[test-full]' to run them")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0", PYTHONPATH=os.path.dirname(HERE))
    env.pop("FASTRNN_CUDA_TILE", None)  # the real tile size
    out = subprocess.run([sys.executable, os.path.join(HERE, "cuda_ptx.py")], capture_output=True, text=True,
                         env=env, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    n = int(out.stdout.split("kernels:")[1].split()[0])  # the script checks that every kernel is listed
    assert n >= 32 and out.stdout.count("ok  ") == 2 * n  # each in float32 (no float64 math) and float64
