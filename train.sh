#!/bin/sh
# sh train.sh DATASET SPLIT BACKBONE MODE [ARCH [SHOT]] [key=value ...]   (sh train.sh -h: usage)
# Trains with train.py; GPUS=N runs N processes through torchrun.
set -e
cd "$(dirname "$0")"
SCRIPT=train.sh
. scripts/args.sh
GPUS=${GPUS:-1}
if [ "$GPUS" -gt 1 ] || [ "${NNODES:-1}" -gt 1 ]; then
    exec "$PYTHON" -m torch.distributed.run --nproc_per_node="$GPUS" --nnodes="${NNODES:-1}" \
        --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --master_port="${MASTER_PORT:-29500}" \
        train.py --config "$CONFIG" $OVERRIDES "$@"
fi
exec "$PYTHON" train.py --config "$CONFIG" $OVERRIDES "$@"
