"""Write a small synthetic dataset in a real on-disk format, for the demo, tests and benchmarks.

    python -m tools.synthetic --out DIR --format voc|voc-raw|coco [--train N] [--val M]
        [--min-size 160] [--max-size 256] [--seed 0] [--workers N]

voc      DIR/JPEGImages/*.jpg, DIR/SegmentationClassAug/*.png (class ids, 255 bands) and the lists
         DIR/train.txt, DIR/val.txt (`JPEGImages/X.jpg SegmentationClassAug/X.png`): ready to train.
voc-raw  the raw trees tools.prepare_pascal starts from: DIR/VOCdevkit/VOC2012 (JPEGImages,
         palette SegmentationClass, ImageSets/Segmentation) and DIR/benchmark_RELEASE/dataset
         (img, cls/*.mat, train.txt, val.txt), with VOC/SBD overlaps like the real ones.
coco     DIR/{train,val}2014/*.jpg and DIR/annotations/instances_{train,val}2014.json with COCO's
         real category ids (1..90 with gaps), polygon instances and RLE crowd regions; some
         images have no annotation. tools.prepare_coco renders their labels.
"""

from util.cli import command_parser, run_main

from . import write_coco, write_voc, write_voc_raw

WRITERS = {"voc": write_voc, "voc-raw": write_voc_raw, "coco": write_coco}


def main(argv=None):
    parser = command_parser("tools.synthetic", __doc__)
    parser.add_argument("--out", required=True, help="output directory (created)")
    parser.add_argument("--format", required=True, choices=tuple(WRITERS))
    parser.add_argument("--train", type=int, help="train images (default 300 voc / voc-raw, 960 coco)")
    parser.add_argument("--val", type=int, help="val images (default 200 voc / voc-raw, 480 coco)")
    parser.add_argument("--min-size", type=int, default=160, help="smallest image side (pixels)")
    parser.add_argument("--max-size", type=int, default=256, help="largest image side (pixels)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    args = parser.parse_args(argv)
    if not 64 <= args.min_size <= args.max_size:
        parser.error(f"--min-size {args.min_size} / --max-size {args.max_size}: need 64 <= min <= max")
    coco = args.format == "coco"
    train = args.train if args.train is not None else (960 if coco else 300)
    val = args.val if args.val is not None else (480 if coco else 200)
    if train < 1 or val < 1:
        parser.error("--train and --val must be >= 1")
    written = WRITERS[args.format](args.out, train=train, val=val, min_size=args.min_size,
                                   max_size=args.max_size, seed=args.seed, workers=args.workers)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    run_main(main)
