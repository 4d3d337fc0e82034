#!/bin/bash
# bf16-mixed vs fp32: zero-shot and linear-probe accuracy on a real CIFAR subset in ../shared/data
# (random ViT-B/32 weights, offline). Prints acc1 and lp_acc1 for each precision.
#   bash experiments/bf16_vs_fp32.sh [cifar10|cifar100]    (default cifar10)
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-cifar10}
case $name in cifar10|cifar100) ;; *) echo "usage: $0 [cifar10|cifar100], not '$name'" >&2; exit 2;; esac
for prec in 32-true bf16-mixed; do
echo "== $name, precision $prec"
python -m clip_lightning test --data.dataset imagefolder --data.root "../shared/data/$name-subset" --data.num_workers 2 \
  --model.name ViT-B/32 --model.pretrained false --model.templates "$name" \
  --trainer.precision $prec --trainer.enable_progress_bar false \
  --trainer.logger.class_path lightning.pytorch.loggers.TensorBoardLogger --trainer.logger.init_args.save_dir runs/bf16cmp --trainer.logger.init_args.name "$name-$prec" \
  --trainer.callbacks+=clip_lightning.LinearProbe --trainer.callbacks.init_args.C 0.316 --trainer.callbacks.init_args.feature_kind projected 2>&1 | grep -E "^ +(acc1|lp_acc1) |Error|error" | head -4
done
