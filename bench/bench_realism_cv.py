"""The exemplar backend cross-validated over the Dubai training tiles: a dev set that never
touches held-out tile_7, and how far one tile's colours sit from the others'.

For each training tile t (1-6), an exemplar bank is built from the *other* five tiles with the
shipped recipe (``rs_seg2any.train.exemplars.build``), and ``--scenes`` central 512-px windows
of tile t's images (509 px for tile_2's narrower ones) are rendered by the generate job at the
default tiling (256/64), render seed ``base + 10 t + i``: every scene is rendered from a bank
that has never seen its tile, as tile_7 is. Per render seed (``--render-seeds``):

- the classifier test (fixed protocol, 3 classifier seeds) on all scenes pooled;
- mean saturation of generated / real, pooled and per tile, and per-class colour distance
  (Delta E) per tile: a tile's own colour balance against the bank of the other five.

Two uses. (1) Deciding a change to the backend without tuning on tile_7: a change must win
over several render seeds here, because one render seed alone moves the classifier by up to
0.1 (the script prints the spread). (2) Reading the held-out colour figures: the per-tile
saturation ratios show what a generator that has not seen a scene's tile gets.

Knobs: --scenes (3), --render-seeds (0 100 200), --c2st-steps (300), --tiles (1 2 3 4 5 6),
--threads (1), --picture PNG. About 4.5 min per render seed on one core (18 scenes).

``--reference`` renders each tile with ``--reference-image`` / ``--reference-labels`` from one
other image of its own tile (the middle one of those that are not scenes) instead of a bank of
the other tiles, as ``bench_realism.py``'s ``exemplar + ref`` row is rendered on tile_7.

``--tells PNG`` reads where the classifier catches the first render seed's scenes
(:func:`rs_seg2any.quality.c2st.crop_scores`, one more classifier run): the share of generated
test crops caught and of real ones called real, by the crop's dominant class and by tile, and
a picture of the 8 generated crops it is surest of (top) and least sure of (bottom), as it saw
them (downsampled, JPEG).

    python bench/bench_realism_cv.py [--render-seeds 0 100 200] [--out /tmp/cv]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from bench_realism import reference_part, write_reference
from PIL import Image

from rs_seg2any.generators.base import Generator
from rs_seg2any.generators.exemplar.backend import ExemplarBackend
from rs_seg2any.quality.c2st import C2STProtocol, c2st, crop_scores
from rs_seg2any.quality.colour import colour_scores, mean_saturation
from rs_seg2any.quality.picture import label_rgb, picture_grid, save_png
from rs_seg2any.quality.scenes import RenderSettings, layout_from_labels, render
from rs_seg2any.taxonomy import load_taxonomy
from rs_seg2any.train.dubai import central_scenes, load_pairs
from rs_seg2any.train.exemplars import TRAIN_TILES, build

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "dubai_aerial"
SCENE = 512  # px: the smallest side the classifier test takes (two 128-px blocks after 2x)


Firsts = list[tuple[np.ndarray, np.ndarray, np.ndarray]]
Scenes = list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]  # tile, labels, real, generated


def one_seed(
    data: Path, tiles: list[int], scenes: int, seed: int, protocol: C2STProtocol, work: Path,
    firsts: Firsts | None = None, scenes_out: Scenes | None = None, reference: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Every tile rendered from a bank without it at render seed ``seed``; scored pooled.
    ``firsts`` receives (labels, real, generated) of each tile's first scene, ``scenes_out``
    (tile, labels, real, generated) of every scene. ``reference``: each tile is rendered with
    ``--reference-image`` from one other image of its own tile instead (as bench_realism's
    ``exemplar + ref`` row is on tile_7)."""
    tax = load_taxonomy("dubai_aerial")
    reals: list[np.ndarray] = []
    gens: list[np.ndarray] = []
    per_tile: dict[str, Any] = {}
    t0 = time.perf_counter()
    for t in tiles:
        pairs = load_pairs(data, [t])
        real, labels, names = central_scenes(pairs, scenes, SCENE)
        layouts = [layout_from_labels(lab, tax) for lab in labels]
        settings = RenderSettings(seed=seed + 10 * t)
        gen = render(_backend(data, t, pairs, names, work, reference), layouts,
                     work / f"s{seed}_t{t}", settings)  # fmt: skip
        col = colour_scores(gen, real, labels)
        per_tile[str(t)] = {"saturation_ratio": col.saturation_ratio,
                            "mean_delta_e": col.mean_delta_e}  # fmt: skip
        reals += real
        gens += gen
        if firsts is not None:
            firsts.append((labels[0], real[0], gen[0]))
        if scenes_out is not None:
            scenes_out.extend((t, lab, r, g) for lab, r, g in zip(labels, real, gen, strict=True))
    render_s = time.perf_counter() - t0
    res = c2st(reals, gens, protocol)
    return {
        "render_seed": seed,
        "c2st": res.mean,
        "c2st_std": res.std,
        "saturation_ratio": mean_saturation(gens) / mean_saturation(reals),
        "per_tile": per_tile,
        "render_s": render_s,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--scenes", type=int, default=3)
    ap.add_argument("--render-seeds", type=int, nargs="+", default=[0, 100, 200])
    ap.add_argument("--tiles", type=int, nargs="+", default=TRAIN_TILES)
    ap.add_argument("--c2st-steps", type=int, default=C2STProtocol.steps)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--picture", type=Path, default=None,
                    help="layout | real | generated: each tile's first scene")  # fmt: skip
    ap.add_argument(
        "--reference",
        action="store_true",
        help="each tile from one other image of its own tile (--reference-image)",
    )
    ap.add_argument(
        "--tells",
        type=Path,
        default=None,
        help="where the classifier catches the first render seed (picture)",
    )
    a = ap.parse_args()
    if not set(a.tiles) <= set(TRAIN_TILES):
        raise SystemExit(f"--tiles must be training tiles {TRAIN_TILES} (tile_7 is held out)")
    torch.set_num_threads(a.threads)
    out = a.out or Path(tempfile.mkdtemp(prefix="realism-cv-"))
    protocol = replace(C2STProtocol(), steps=a.c2st_steps, threads=a.threads)
    rows = []
    source = "a reference image of the same tile" if a.reference else "bank from the other tiles"
    print(f"tiles {a.tiles}, {a.scenes} scenes each, {source}; out {out}")
    print(f"{'render seed':>11}  {'C2ST':>13}  {'sat':>5}  per tile: saturation ratio / dE")
    firsts: Firsts = []
    scenes: Scenes = []
    for seed in a.render_seeds:
        first = not firsts
        r = one_seed(a.data, a.tiles, a.scenes, seed, protocol, out, firsts if first else None,
                     scenes if first and a.tells else None, a.reference)  # fmt: skip
        rows.append(r)
        tiles = "  ".join(f"t{t} {v['saturation_ratio']:.2f}/{v['mean_delta_e']:.1f}"
                          for t, v in r["per_tile"].items())  # fmt: skip
        print(f"{seed:>11}  {r['c2st']:.3f} +- {r['c2st_std']:.3f}  "
              f"{r['saturation_ratio']:.2f}  {tiles}", flush=True)  # fmt: skip
    c = [r["c2st"] for r in rows]
    sat = np.mean([r["saturation_ratio"] for r in rows])
    print(f"C2ST over render seeds: mean {np.mean(c):.3f}, range {min(c):.3f}-{max(c):.3f}; "
          f"saturation ratio pooled {sat:.3f}")  # fmt: skip
    if a.picture is not None:
        colours = load_taxonomy("dubai_aerial").colours_by_id()
        sheet = picture_grid(
            [label_rgb(lab, colours) for lab, _, _ in firsts],
            {"real (tile 1-6)": [r for _, r, _ in firsts],
             "exemplar, bank of the other tiles": [g for _, _, g in firsts]},
            crop=SCENE, panel=256,
        )  # fmt: skip
        print(f"picture: {save_png(sheet, a.picture)}")
    if a.tells is not None:
        rows[0]["tells"] = tells(scenes, protocol, a.tells)
    (out / "report.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


def _backend(data: Path, tile: int, pairs: list[Any], names: list[str], work: Path,
             reference: bool) -> Generator:  # fmt: skip
    """The bank of the other tiles, or ``reference``: the tile's own image that is none of
    the scenes (the middle one of those left) as ``--reference-image``."""
    if not reference:
        return ExemplarBackend(bank=build(data, tiles=[k for k in TRAIN_TILES if k != tile]))
    _, rgb, lab = reference_part(pairs, names, None)
    image, labels = write_reference(work / f"reference_t{tile}", rgb[..., :3], lab)
    return ExemplarBackend(reference_image=str(image), reference_labels=str(labels))


def _share(v: float | None) -> str:
    return "   -" if v is None else f"{v:.2f}"


def tells(scenes: Scenes, protocol: C2STProtocol, picture: Path) -> dict[str, Any]:
    """Caught shares by the test crops' dominant class and by tile; the picture of the
    surest and least sure generated crops."""
    res = crop_scores([r for _, _, r, _ in scenes], [g for _, _, _, g in scenes], protocol)
    names = load_taxonomy("dubai_aerial").names_by_id()
    size = protocol.crop * protocol.downsample

    def keys(where: np.ndarray) -> tuple[list[str], list[str]]:
        cls, tile = [], []
        for i, y, x in where:
            t, lab = scenes[i][0], scenes[i][1][y : y + size, x : x + size]
            cls.append(names.get(int(np.bincount(lab.ravel()).argmax()), "?"))
            tile.append(f"tile {t}")
        return cls, tile

    real_ok, caught = res.real_logit < 0, res.caught()
    rk, ck = keys(res.real_where), keys(res.cand_where)
    report: dict[str, Any] = {"accuracy": res.accuracy}
    print(f"where the classifier catches the first render seed (accuracy {res.accuracy:.3f}):")
    for j, what in enumerate(("dominant class", "tile")):
        groups: dict[str, Any] = {}
        for key in sorted(set(ck[j]) | set(rk[j])):
            mc, mr = np.array(ck[j]) == key, np.array(rk[j]) == key
            groups[key] = {"generated_caught": float(caught[mc].mean()) if mc.any() else None,
                           "generated_n": int(mc.sum()),
                           "real_called_real": float(real_ok[mr].mean()) if mr.any() else None,
                           "real_n": int(mr.sum())}  # fmt: skip
            g = groups[key]
            print(f"  {what:14s} {key:12s} generated caught {_share(g['generated_caught'])} "
                  f"({g['generated_n']:3d})  real called real {_share(g['real_called_real'])} "
                  f"({g['real_n']:3d})")  # fmt: skip
        report[what] = groups
    order = np.argsort(res.cand_logit)
    k = min(8, len(order))
    rows = [order[::-1][:k], order[:k]]
    sheet = np.concatenate([np.concatenate([res.cand_crops[i] for i in r], 1) for r in rows], 0)
    report["picture"] = str(
        save_png(
            Image.fromarray(sheet).resize(
                (sheet.shape[1] * 2, sheet.shape[0] * 2), Image.Resampling.NEAREST
            ),
            picture,
        )
    )
    print(f"  picture (top: surest caught, bottom: least sure): {report['picture']}")
    return report


if __name__ == "__main__":
    raise SystemExit(main())
