"""Seconds per 256-px tiny tile in a plain process under three glibc malloc settings: its
defaults, Dask's worker default (a 64 kB trim threshold), and what ``--workers`` sets for
its local workers (rs_seg2any.job.cluster.SPAWN_ENV). malloc reads them once at start, so
each setting runs in a child process of its own; ratios are against glibc's defaults,
measured in the same run. About 1.5 min on the 2-core machine; run it quiet.

    python bench/bench_malloc.py [--tiles 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = """
import json, os, resource, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from rs_seg2any.generators.base import DEFAULT_GUIDANCE, TileCondition
from rs_seg2any.generators.registry import load_generator
from rs_seg2any.taxonomy import load_taxonomy
tax = load_taxonomy("dubai_aerial")
lab = np.full((256, 256), 2, np.uint8); lab[100:120] = 3; lab[30:80, 30:80] = 1
inst = np.zeros(lab.shape, np.int64)
for i, c in enumerate((2, 3, 1), 1):
    inst[lab == c] = i
cond = TileCondition(inst, ["sand", "road", "building"], "aerial image", labels=lab,
                     extra={"class_names": tax.names_by_id(), "taxonomy": tax}, gsd=0.5)
gen = load_generator("tiny", None, threads=1)
gen.generate(cond, steps=8, guidance=DEFAULT_GUIDANCE, gamma=1.0, seed=0)  # warm-up
before, times = resource.getrusage(resource.RUSAGE_SELF), []
for s in range(int(sys.argv[1])):
    t = time.perf_counter()
    gen.generate(cond, steps=8, guidance=DEFAULT_GUIDANCE, gamma=1.0, seed=s)
    times.append(time.perf_counter() - t)
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"median": float(np.median(times)), "sys": after.ru_stime - before.ru_stime,
                  "faults": after.ru_minflt - before.ru_minflt}))
"""


def main() -> int:
    from rs_seg2any.job.cluster import SPAWN_ENV

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tiles", type=int, default=5)
    args = parser.parse_args()
    settings = {
        "glibc defaults": {},
        "Dask's worker default": {"MALLOC_TRIM_THRESHOLD_": "65536"},
        "--workers (SPAWN_ENV)": {k: str(v) for k, v in SPAWN_ENV.items()},
    }
    base = None
    for name, extra in settings.items():
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        env.update({"OMP_NUM_THREADS": "1", **extra})
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.tiles)], env=env,
                             capture_output=True, text=True, check=True)  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        base = base or r["median"]
        print(f"{name:>22}: {r['median']:.3f} s per tile ({r['median'] / base:.2f}x glibc "
              f"defaults), sys {r['sys']:.2f} s, minor page faults {r['faults']:,} over "
              f"{args.tiles} tiles {extra or ''}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
