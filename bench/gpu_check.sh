#!/usr/bin/env bash
# The one script to run on a lent GPU machine (the `device` tool), from the repository root:
# the GPU tests, then the benchmark of both CUDA paths against PyTorch/cuDNN; all output to $OUT.
#
# That machine reaches no package index and its image brings PyTorch. Whatever else is missing
# (numba-cuda and its cuda-* bindings; numba, llvmlite, click, scipy, threadpoolctl if absent)
# goes in .wheels/ beforehand, on a machine with an index:
#     pip download -d .wheels --only-binary :all: --python-version 3.X numba-cuda ...
# and travels with `carry: [".wheels"]` (64 MiB in all).
set -u
OUT=${OUT:-/tmp/fastrnn-gpu}
mkdir -p "$OUT"
{
  nvidia-smi || true
  python -m venv --system-site-packages /tmp/fastrnn-venv  # keeps the image's PyTorch
  . /tmp/fastrnn-venv/bin/activate
  if [ -d .wheels ]; then pip install -q --no-index --no-deps .wheels/*.whl; fi
  pip install -q --no-index --no-deps --no-build-isolation .
  python -c "import numba, numba_cuda, click, scipy, threadpoolctl; import fastrnn.cuda as c; print('cuda:', c.status())"
} > "$OUT/setup.log" 2>&1
. /tmp/fastrnn-venv/bin/activate
export NUMBA_ENABLE_CUDASIM=0
timeout 240 python -m pytest -q -x -p no:cacheprovider tests/test_cuda_sim.py tests/test_cuda_gpu.py > "$OUT/tests.log" 2>&1
echo "tests rc=$?" >> "$OUT/tests.log"
timeout 240 python bench/bench.py --device cuda --rounds 3 --per-block 5 --out "$OUT/bench" > "$OUT/bench.log" 2>&1
echo "bench rc=$?" >> "$OUT/bench.log"
tail -n 5 "$OUT"/*.log
