#!/bin/bash
# Zero-shot evaluation with torchrun (Lightning reads torchrun's environment). Run the same
# command on every node, with NODE_RANK set per node and MASTER_ADDR the first node's address:
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 GPUS=8 bash experiments/torchrun_zeroshot.sh configs/zeroshot_imagenet.yaml --data.root /data/imagenet
# One node, 4 GPUs:  GPUS=4 bash experiments/torchrun_zeroshot.sh configs/zeroshot_cifar10.yaml
set -euo pipefail
CONFIG=${1:-configs/zeroshot_cifar10.yaml}
shift || true
NNODES=${NNODES:-1}
GPUS=${GPUS:-1}
torchrun \
    --nnodes "$NNODES" --node_rank "${NODE_RANK:-0}" --nproc_per_node "$GPUS" \
    --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}" \
    -m clip_lightning test --config "$CONFIG" "$@" \
    --trainer.strategy ddp --trainer.devices "$GPUS" --trainer.num_nodes "$NNODES"
