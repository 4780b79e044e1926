#!/usr/bin/env bash
# The one GPU check for issue 13 (the Triton DCN): the CUDA tests, then bench_cuda.py with old
# and new paths in the same run, then torch.compile of the model. Nothing else; about 6 minutes
# on an H100/H200 (most of it Triton autotuning and torch.compile), each step with its own limit.
#
#   bash scripts/gpu_check.sh            # logs in $OUT if set, else output/gpu_check
#
# Uses .venv/bin/python when present, else the python3 on PATH (torch with Triton, torchvision,
# scikit-image, tqdm, tensorboard, pytest). A failed step does not stop the others; the exit
# status is that of the first failed step.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-output/gpu_check}
mkdir -p "$out"
python=python3
if [ -x .venv/bin/python ]; then python=.venv/bin/python; fi
export PYTHONUNBUFFERED=1
status=0

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "== $name ($(date -u +%H:%M:%S) UTC, limit ${limit}s)"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    tr '\r' '\n' <"$out/$name.log" | grep -v -e '^\s*$' -e '%|' | tail -n 80  # no progress bars
    echo "== $name: exit $rc"
    if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then status=$rc; fi
}

{
    nvidia-smi -L
    "$python" -c "import torch, torchvision, triton; print('torch', torch.__version__, \
'torchvision', torchvision.__version__, 'triton', triton.__version__)"
} 2>&1 | tee "$out/versions.log"

step test_cuda 150 "$python" -m pytest -q -p no:cacheprovider tests/test_cuda.py
step bench 200 "$python" benchmarks/bench_cuda.py --repeat 5 --train-repeat 5 --sizes 256 1024
step bench_compile 150 "$python" benchmarks/bench_cuda.py --sections --compile --sizes 1024
exit "$status"
