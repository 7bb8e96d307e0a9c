"""``rs-seg2any train-base --config geoconf/train/tiny_base.yaml`` (also ``python -m
rs_seg2any.train train-base ...``): the CLI delegates here."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rs-seg2any")
    sub = parser.add_subparsers(dest="cmd", required=True)
    tb = sub.add_parser("train-base", help="train the embedded tiny generator")
    tb.add_argument("--config", type=Path, required=True)
    tb.add_argument("--out", default=None, help="override the output folder")
    tb.add_argument("--minutes", type=float, default=None, help="override the time budget")
    tb.add_argument("--no-progress", action="store_true")
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
