#!/usr/bin/env bash
# fp32 vs bf16 (--precision bf16 on CPU) on a fixed subset: the first N CBSD68 images (sorted by
# name) at sigma 15/25/50 and the first N Rain100L pairs; prints each task's mean PSNR in both
# precisions and their difference, and exits 1 when one differs by more than 0.05 dB (issue 11).
#
#   scripts/bf16_accuracy.sh --ckpt ckpt/All.pth \
#       --cbsd68 /path/to/test/CBSD68 --rain100l /path/to/test/Rain100L [--images 20] [--out DIR]
#
# --rain100l holds input/ and target/ with equal names. The subset is a folder of symbolic links
# in DIR (default a temporary folder); test.py's results for each precision are kept there.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
ckpt="" cbsd68="" rain="" images=20 out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --ckpt) ckpt=$2; shift 2 ;;
        --cbsd68) cbsd68=$2; shift 2 ;;
        --rain100l) rain=$2; shift 2 ;;
        --images) images=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) usage ;;
    esac
done
[ -n "$ckpt" ] && [ -d "$cbsd68" ] && [ -d "$rain/input" ] && [ -d "$rain/target" ] || usage
out=${out:-$(mktemp -d -t bf16_accuracy.XXXXXX)}
python=${PYTHON:-.venv/bin/python}

# The subset: the first $images files of each folder, linked under $out/subset.
link_first() {  # link_first SOURCE_DIR DEST_DIR
    mkdir -p "$2"
    find "$1" -maxdepth 1 -type f -printf '%f\n' | sort | head -n "$images" |
        while read -r name; do ln -sf "$(realpath "$1/$name")" "$2/$name"; done
}
link_first "$cbsd68" "$out/subset/CBSD68"
for side in input target; do
    mkdir -p "$out/subset/Rain100L/$side"
done
find "$rain/input" -maxdepth 1 -type f -printf '%f\n' | sort | head -n "$images" |
    while read -r name; do
        for side in input target; do
            ln -sf "$(realpath "$rain/$side/$name")" "$out/subset/Rain100L/$side/$name"
        done
    done

for precision in fp32 bf16; do
    for mode in 0 1; do
        echo "== test.py --mode $mode --precision $precision"
        "$python" test.py --mode "$mode" --ckpt "$ckpt" --device cpu --precision "$precision" \
            --denoise_path "$out/subset/CBSD68" --derain_path "$out/subset/Rain100L" \
            --output_path "$out/$precision/mode$mode"
    done
done

"$python" - "$out" <<'EOF'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
psnr = {}
for precision in ("fp32", "bf16"):
    for summary in sorted((out / precision).glob("mode*/summary.json")):
        for r in json.loads(summary.read_text())["results"]:
            psnr.setdefault((r["set"], r["task"]), {})[precision] = (r["psnr"], r["images"])
print(f"\n{'set':<10} {'task':<12} {'images':>6} {'fp32 dB':>9} {'bf16 dB':>9} {'bf16-fp32':>10}")
worst = 0.0
for (name, task), by in sorted(psnr.items()):
    (a, n), (b, _) = by["fp32"], by["bf16"]
    worst = max(worst, abs(b - a))
    print(f"{name:<10} {task:<12} {n:>6} {a:>9.3f} {b:>9.3f} {b - a:>+10.4f}")
print(f"largest |difference| {worst:.4f} dB (target <= 0.05 dB); results in {out}")
sys.exit(0 if worst <= 0.05 else 1)
EOF
