#!/usr/bin/env bash
# Install the requirements into .venv, then run the whole pipeline on the bundled sample data,
# on CPU, in a few minutes: a short training run (both phases, tiny model) to show the pipeline,
# then test.py on the sample test pairs and demo.py on the sample degraded photos with the
# shipped weights (or the official ones, when in ckpt/).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
out=output/quickstart
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet -r requirements.txt

echo "== 1/3 train: tiny AirNet, 2 epochs encoder-only + 2 epochs joint, all five degradations"
.venv/bin/python train.py --device cpu --num_workers 0 \
    --n_feats 16 --n_groups 1 --n_blocks 2 --patch_size 64 \
    --epochs 4 --epochs_encoder 2 --epoch_size 4 --val_every 2 --val_images 1 --val_crop 96 \
    --ckpt_path "$out/ckpt" --log_dir "$out/logs" --output_path "$out/val"

echo "== 2/3 test: the shipped weights (or official ones in ckpt/) on data/test: PSNR/SSIM, input and gain"
.venv/bin/python test.py --mode 3 --device cpu \
    --denoise_path data/test/denoise --derain_path data/test/derain \
    --dehaze_path data/test/dehaze --output_path "$out/test" --save_images

echo "== 3/3 demo: restore data/demo with the same weights"
.venv/bin/python demo.py --device cpu --test_path data/demo --output_path "$out/demo" --compare

cat <<EOT

Done. Outputs:
  checkpoints     $out/ckpt/  (the short run's: airnet_last.pth model only; airnet_last_train.pth
                  resumable; it shows the pipeline, a few CPU steps restore nothing yet)
  training logs   $out/logs/  (log.jsonl, TensorBoard: .venv/bin/tensorboard --logdir $out/logs)
  results table   $out/test/summary.json and $out/test/results.csv
  restored images $out/demo/  (side by side: $out/demo/compare/)
Steps 2 and 3 used ckpt/All.pth when present, else the weights shipped in ckpt/ (a small AirNet
trained by this repository's train.py, not the paper's: ckpt/MODEL_CARD.md).
EOT
