#!/usr/bin/env bash
# Twinhead's `bench train` and its PyTorch twin (tools/bench_train_torch.py),
# interleaved PAIRS times on the same machine, with the ratio of each pair.
#
#   bash tools/bench_train_pair.sh [PAIRS] [quick|voc-ade]
#
# quick: the quick preset (model n, 96 px, batch 16, alternate).
# voc-ade: the voc-ade shape (model s, 512 px, batch 8, alternate) on the
# synthetic data's classes (6 detection, 9 segmentation), so that it runs
# without the real datasets. Needs a release build (cargo build --release)
# and torch (pip install torch==2.15.0).
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-3}
shape=${2:-quick}
bin=${TWINHEAD_BIN:-target/release/twinhead}
case "$shape" in
  quick)
    twin=(--preset quick)
    torch=()
    ;;
  voc-ade)
    twin=(--preset quick --set model.size=s --set data.image_size=512 --set data.batch_size=8 --warmup 1 --steps 3)
    torch=(--size s --image-size 512 --batch 8 --warmup 1 --steps 3)
    ;;
  *) echo "unknown shape $shape (quick or voc-ade)" >&2; exit 2 ;;
esac
for i in $(seq 1 "$pairs"); do
  ours=$("$bin" bench train "${twin[@]}" 2>/dev/null | awk '/^images\/s/ {print $2}')
  theirs=$(python3 tools/bench_train_torch.py --threads 2 "${torch[@]}" | awk '/^images\/s/ {print $2}')
  echo "pair $i: twinhead $ours images/s, pytorch $theirs images/s, ratio $(python3 -c "print(f'{$ours / $theirs:.2f}')")"
done
