#!/usr/bin/env bash
# The one script to run on a lent GPU machine (the `device` tool), from the repository root:
# the GPU tests and the benchmark against PyTorch/cuDNN, everything written to $OUT.
#   run: bash bench/gpu_check.sh            (carry .wheels/ if the image lacks numba-cuda)
# The machine cannot reach a package index: wheels for numba-cuda and its CUDA bindings (and
# numba, click, scipy, threadpoolctl where missing) go in .wheels/ (pip download -d .wheels ...).
set -u
OUT=${OUT:-/tmp/fastrnn-gpu}
mkdir -p "$OUT"
{
  nvidia-smi || true
  python -m venv --system-site-packages /tmp/fastrnn-venv   # keeps the image's PyTorch
  . /tmp/fastrnn-venv/bin/activate
  if [ -d .wheels ]; then pip install -q --no-index --find-links .wheels numba-cuda; fi
  pip install -q --no-index --find-links .wheels --no-build-isolation . 2>/dev/null || pip install -q --no-deps .
  python -c "import fastrnn.cuda as c; print('cuda:', c.status())"
} > "$OUT/setup.log" 2>&1
export NUMBA_ENABLE_CUDASIM=0
timeout 240 python -m pytest -q tests/test_cuda_sim.py tests/test_cuda_gpu.py -x > "$OUT/tests.log" 2>&1
echo "tests rc=$?" >> "$OUT/tests.log"
timeout 240 python bench/bench.py --device cuda --rounds 3 --per-block 5 --out "$OUT/bench" > "$OUT/bench.log" 2>&1
echo "bench rc=$?" >> "$OUT/bench.log"
tail -n 3 "$OUT"/*.log
