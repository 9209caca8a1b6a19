"""The backend contract (fastrnn/backend.py): both backends define every method it lists, with
the same parameters, and no public method beyond it (issue #28: the interface had no written
contract). The CUDA backend's class is read without a GPU (it needs numba-cuda to import)."""
import inspect

import pytest

from fastrnn.backend import Backend

CONTRACT = {n: f for n, f in vars(Backend).items() if inspect.isfunction(f) and not n.startswith("_")}


def _check(cls):
    own = {n: f for n, f in vars(cls).items() if inspect.isfunction(f) and not n.startswith("_")}
    assert set(own) == set(CONTRACT), (f"{cls.__name__}: missing {sorted(set(CONTRACT) - set(own))}, "
                                       f"beyond the contract {sorted(set(own) - set(CONTRACT))}")
    for name, f in own.items():
        assert inspect.signature(f) == inspect.signature(CONTRACT[name]), f"{cls.__name__}.{name}"
        assert CONTRACT[name].__doc__, f"Backend.{name} has no documentation"
    assert Backend in cls.__mro__ and isinstance(cls.name, str)


def test_the_cpu_backend_meets_the_contract():
    from fastrnn.cpu import CpuBackend

    _check(CpuBackend)
    assert len(CONTRACT) >= 30


def test_the_cuda_backend_meets_the_contract():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed: pip install '.[test-full]' to run it")
    from fastrnn.cuda.backend import CudaBackend

    _check(CudaBackend)
