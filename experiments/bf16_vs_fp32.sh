#!/bin/bash
# bf16-mixed vs fp32: zero-shot and linear-probe accuracy on the real CIFAR-10 subset in ../shared/data
# (random ViT-B/32 weights, offline). Prints acc1 and lp_acc1 for each precision.
cd "$(dirname "$0")/.."
for prec in 32-true bf16-mixed; do
python -m clip_lightning test --data.dataset imagefolder --data.root ../shared/data/cifar10-subset --data.num_workers 2 \
  --model.name ViT-B/32 --model.pretrained false --model.templates cifar10 \
  --trainer.precision $prec --trainer.enable_progress_bar false \
  --trainer.logger.class_path lightning.pytorch.loggers.TensorBoardLogger --trainer.logger.init_args.save_dir runs/bf16cmp --trainer.logger.init_args.name $prec \
  --trainer.callbacks+=clip_lightning.LinearProbe --trainer.callbacks.init_args.C 0.316 --trainer.callbacks.init_args.feature_kind projected 2>&1 | grep -E "acc1|Error|error" | head -4
done
