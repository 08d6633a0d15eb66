# Argument handling shared by train.sh and test.sh (sourced, POSIX sh).
#   DATASET SPLIT BACKBONE MODE [ARCH [SHOT]] [key=value ...]
# Sets CONFIG and OVERRIDES (the key=value words passed on to the Python command line). The
# names of backbones, modes and archs are checked by the Python side against their registries.

usage() {
    [ -n "$1" ] && echo "error: $1" >&2
    cat >&2 <<USAGE
usage: sh $SCRIPT DATASET SPLIT BACKBONE MODE [ARCH [SHOT]] [key=value ...]
  DATASET   pascal | coco | demo (reads config/DATASET_SPLIT.yaml)
  SPLIT     split0 .. split3 (or 0 .. 3)
  BACKBONE  resnet50, resnet101, vgg16, ... (python train.py -h lists every choice)
  MODE      svf, freeze, full, ... (fine-tuning mode), or base: BAM's base learner
            (config/DATASET_SPLIT_base.yaml, arch pspnet)
  ARCH      baseline (default), pfenet, bam, ...
  SHOT      1 (default), 5 or any positive integer
  key=value any key of config/defaults.yaml, e.g. base_lr=0.01 workers=4
  GPUS=N    environment: run N processes with torchrun (NNODES, NODE_RANK, MASTER_ADDR and
            MASTER_PORT for several machines)
examples:
  sh $SCRIPT pascal split0 resnet50 svf
  sh $SCRIPT coco split1 resnet101 freeze pfenet 5
  sh $SCRIPT pascal split0 resnet50 base            # BAM stage 1, then:
  sh $SCRIPT pascal split0 resnet50 svf bam
USAGE
    [ -n "$usage_ok" ] && exit 0
    exit 2
}

case "$1" in -h|--help) usage_ok=1 ;; esac
if [ -n "$usage_ok" ]; then usage 2>&1; fi
[ $# -ge 4 ] || usage "expected at least 4 arguments, got $#"
DATASET=$1 SPLIT=$2 BACKBONE=$3 MODE=$4
shift 4
ARCH=baseline
SHOT=1
case "$1" in *=*|'') ;; *) ARCH=$1; shift ;; esac
case "$1" in *=*|'') ;; *) SHOT=$1; shift ;; esac
for word in "$@"; do
    case "$word" in *=*) ;; *) usage "'$word' is not key=value (ARCH and SHOT come right after MODE)" ;; esac
done

case "$SPLIT" in
    split[0-3]) ;;
    [0-3]) SPLIT=split$SPLIT ;;
    *) usage "SPLIT must be split0 .. split3, got '$SPLIT'" ;;
esac
case "$SHOT" in
    ''|*[!0-9]*|0) usage "SHOT must be a positive integer, got '$SHOT'" ;;
esac

if [ "$MODE" = base ]; then
    [ "$ARCH" = baseline ] && [ "$SHOT" = 1 ] || usage "MODE base (the base learner) takes no ARCH or SHOT"
    CONFIG=config/${DATASET}_${SPLIT}_base.yaml
    OVERRIDES="backbone=$BACKBONE"
else
    CONFIG=config/${DATASET}_${SPLIT}.yaml
    OVERRIDES="backbone=$BACKBONE mode=$MODE arch=$ARCH shot=$SHOT"
fi
[ -f "$CONFIG" ] || usage "no config file $CONFIG (DATASET '$DATASET', SPLIT '$SPLIT')"

if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
