#!/bin/sh
# sh test.sh DATASET SPLIT BACKBONE MODE [ARCH [SHOT]] [key=value ...]   (sh test.sh -h: usage)
# Evaluates the matching run's best checkpoint (or weight=PATH) with test.py over test_seeds.
set -e
cd "$(dirname "$0")"
SCRIPT=test.sh
. scripts/args.sh
GPUS=${GPUS:-1}
if [ "$GPUS" -gt 1 ]; then
    exec "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$GPUS" \
        test.py --config "$CONFIG" $OVERRIDES "$@"
fi
exec "$PYTHON" test.py --config "$CONFIG" $OVERRIDES "$@"
