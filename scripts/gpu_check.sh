#!/usr/bin/env bash
# The GPU checks in one go: CUDA tests, the CUDA benchmark, the whole pipeline on CUDA through
# torchrun (NCCL) with --amp, and optionally test.py in fp32/bf16/fp16 with real weights.
#
#   bash scripts/gpu_check.sh [LOG_DIR] [CKPT CLEAN_PHOTOS_DIR]
#
# Uses the python3 on PATH (torch, torchvision, scikit-image, tqdm, tensorboard, pytest).
# One log per step goes to LOG_DIR (default output/gpu_check), the runs' own outputs to
# output/gpu_check_runs; each step has its own time limit and a failed step does not stop the
# others; the exit status is that of the first failed step.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-output/gpu_check}
ckpt=${2:-}
photos=${3:-}
runs=output/gpu_check_runs
mkdir -p "$out" "$runs"
export PYTHONUNBUFFERED=1
status=0

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "== $name"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    tr '\r' '\n' <"$out/$name.log" | grep -v -e '^\s*$' -e '%|' | tail -n 60  # no progress bars
    echo "== $name: exit $rc"
    if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then status=$rc; fi
}

nvidia-smi -L
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"

bench=(python3 benchmarks/bench_cuda.py --repeat 5 --sizes 256 512)
if [ -n "$ckpt" ]; then bench+=(--ckpt "$ckpt" --images "$photos"); fi
step bench 150 "${bench[@]}"
step test_cuda 90 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py

run=$runs/pipeline
step pipeline 90 bash -c "
set -e
torchrun --standalone --nproc_per_node 1 train.py --device cuda --amp --num_workers 2 \
    --n_feats 16 --n_groups 1 --n_blocks 2 --patch_size 64 \
    --epochs 4 --epochs_encoder 2 --epoch_size 4 --val_every 2 --val_images 1 --val_crop 96 \
    --ckpt_path $run/ckpt --log_dir $run/logs --output_path $run/val
python3 test.py --mode 3 --device cuda --ckpt $run/ckpt/airnet_last.pth \
    --denoise_path data/test/denoise --derain_path data/test/derain \
    --dehaze_path data/test/dehaze --output_path $run/test
python3 demo.py --device cuda --precision bf16 --ckpt $run/ckpt/airnet_last.pth \
    --test_path data/demo --output_path $run/demo --compare
"

if [ -n "$ckpt" ]; then
    for precision in fp32 bf16 fp16; do
        step "test_$precision" 45 python3 test.py --mode 0 --device cuda --ckpt "$ckpt" \
            --denoise_path "$photos" --precision "$precision" --output_path "$runs/test_$precision"
    done
fi

step pytest_all 150 python3 -m pytest -q -p no:cacheprovider -x tests
exit "$status"
