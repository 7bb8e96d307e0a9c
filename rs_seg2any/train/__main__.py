"""``rs-seg2any train-base --config geoconf/train/tiny_base.yaml`` (also ``python -m
rs_seg2any.train train-base ...``): the CLI delegates here. ``python -m rs_seg2any.train
segmenter --out seg.safetensors --minutes 30`` trains the layout-fidelity segmenter
(options: ``python -m rs_seg2any.train segmenter --help``); ``segmenter-soup A B --out F``
averages segmenter weight files (:mod:`rs_seg2any.train.soup`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["segmenter"]:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from rs_seg2any.train.segmenter import main as segmenter_main

        return segmenter_main(args_in[1:])
    if args_in[:1] == ["segmenter-soup"]:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from rs_seg2any.train.soup import main as soup_main

        return soup_main(args_in[1:])
    parser = argparse.ArgumentParser(prog="rs-seg2any")
    sub = parser.add_subparsers(dest="cmd", required=True)
    tb = sub.add_parser("train-base", help="train the embedded tiny generator")
    tb.add_argument("--config", type=Path, required=True)
    tb.add_argument("--out", default=None, help="override the output folder")
    tb.add_argument("--minutes", type=float, default=None, help="override the time budget")
    tb.add_argument("--no-progress", action="store_true")
    sub.add_parser("segmenter", help="train the layout-fidelity segmenter (see its --help)")
    sub.add_parser("segmenter-soup", help="average segmenter weight files (see its --help)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from rs_seg2any.train.base import train_base

    overrides: dict[str, object] = {}
    if args.out is not None:
        overrides["out"] = args.out
    if args.minutes is not None:
        overrides["minutes"] = args.minutes
    path = train_base(args.config, progress=not args.no_progress, **overrides)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
