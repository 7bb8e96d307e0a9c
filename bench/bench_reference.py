"""Scale and domain from a reference image: the Slovenian Sentinel-2 patch (10 m), in one run.

The clear scene (index 2 of ``REFERENCE_SCENES.npy``, RGB = bands 4-3-2 x 3.5) and its land-use
raster are split down the middle: the west half is the reference (written as a GeoTIFF and a
label GeoTIFF on its grid), the east half's layout is rendered by the generate job and compared
with the real east half: per-class colour distance (Delta E, CIELAB), saturation ratio and
texture distance (the patch is too small for the classifier test). Candidates:
``exemplar + reference`` (the exemplar backend with ``--reference-image``/``--reference-labels``),
``exemplar (Dubai bank)`` (no reference: 0.5 m Dubai texture at 10 m, warns), ``tiny v1``,
``class-patch fill`` and ``flat paint`` built from the west half.

    python bench/bench_reference.py [--out DIR] [--picture PNG]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import rasterio
import torch
from affine import Affine
from odc.geo.geobox import GeoBox
from PIL import Image

from rs_seg2any.generators.registry import load_generator
from rs_seg2any.quality.baselines import ClassPatchFill, FlatPainter
from rs_seg2any.quality.colour import colour_scores
from rs_seg2any.quality.scenes import RenderSettings, layout_from_labels, render
from rs_seg2any.quality.texture import texture_scores
from rs_seg2any.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "eolearn_slovenia"
X0, X1, Y0, Y1 = 465181.05, 466180.53, 5079244.89, 5080254.63
CRS = "EPSG:32633"


def write_tif(path: Path, data: np.ndarray, transform: Affine) -> None:
    bands = data[None] if data.ndim == 2 else data.transpose(2, 0, 1)
    with rasterio.open(path, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1],
                       count=bands.shape[0], dtype="uint8", crs=CRS,
                       transform=transform) as dst:  # fmt: skip
        dst.write(bands)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--scene", type=int, default=2)
    ap.add_argument("--picture", type=Path,
                    default=REPO / "docs/images/realism_exemplar_slovenia.png")  # fmt: skip
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = a.out or Path(tempfile.mkdtemp(prefix="reference-"))
    out.mkdir(parents=True, exist_ok=True)
    scenes = np.load(a.data / "REFERENCE_SCENES.npy")
    rgb = np.clip(scenes[a.scene][..., [3, 2, 1]] * 3.5 * 255, 0, 255).astype(np.uint8)
    lab = np.load(a.data / "LULC.npy")[..., 0].astype(np.uint8)
    h, w = lab.shape
    rx, ry = (X1 - X0) / w, (Y1 - Y0) / h
    half = w // 2
    west = Affine(rx, 0, X0, 0, -ry, Y1)
    east = Affine(rx, 0, X0 + half * rx, 0, -ry, Y1)
    ref_img, ref_lab = out / "reference.tif", out / "reference_labels.tif"
    write_tif(ref_img, rgb[:, :half], west)
    write_tif(ref_lab, lab[:, :half], west)
    real, target = rgb[:, half:], lab[:, half:]
    tax = load_taxonomy("eolearn_slovenia")
    layout = layout_from_labels(target, tax, GeoBox(target.shape, east, CRS))
    settings = RenderSettings()
    gens = {
        "exemplar + reference": load_generator(
            "exemplar", reference_image=str(ref_img), reference_labels=str(ref_lab)
        ),
        "exemplar (Dubai bank)": load_generator("exemplar"),
        "tiny v1 (shipped)": load_generator("tiny"),
    }
    images: dict[str, np.ndarray] = {}
    for k, g in gens.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            images[k] = render(g, [layout], out / k.split()[0] / k.split()[-1], settings)[0]
        for c in caught:
            print(f"  {k}: warning: {c.message}")
    fill = ClassPatchFill.from_pairs([rgb[:, :half]], [lab[:, :half]], patch=16, per_class=48)
    images["class-patch fill"] = fill(target)
    images["flat paint"] = FlatPainter.from_pairs([rgb[:, :half]], [lab[:, :half]])(target)
    rows = {}
    for k, img in images.items():
        c = colour_scores([img], [real], [target], erode=1, min_pixels=64)
        t = texture_scores([img], [real], [target], erode=1, min_pixels=64)
        rows[k] = {"delta_e": round(c.mean_delta_e, 2), "saturation_ratio":
                   round(c.saturation_ratio, 3), "texture": round(t.mean_distance, 4),
                   "sharpness": round(t.mean_sharpness, 3),
                   "delta_e_by_class": {str(q): round(v, 2) for q, v in c.delta_e.items()},
                   "texture_by_class": {str(q): round(v, 4)
                                        for q, v in t.distance.items()}}  # fmt: skip
    print(f"{'candidate':24s} {'dE':>6s} {'sat/real':>8s} {'texture':>8s} {'sharp':>6s}")
    for k, r in rows.items():
        print(f"{k:24s} {r['delta_e']:6.2f} {r['saturation_ratio']:8.3f} {r['texture']:8.4f} "
              f"{r['sharpness']:6.3f}")  # fmt: skip
    palette = np.zeros((256, 3), np.uint8)
    for cl in tax.classes:
        palette[cl.id] = cl.colour
    panels = [palette[target], real, images["tiny v1 (shipped)"], images["exemplar + reference"],
              images["class-patch fill"]]  # fmt: skip
    gap = np.full((h, 2, 3), 255, np.uint8)
    strip = np.concatenate([x for p in panels for x in (p, gap)][:-1], axis=1)
    a.picture.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(strip).resize((strip.shape[1] * 3, h * 3), Image.Resampling.NEAREST).save(
        a.picture, optimize=True
    )
    summary = {"scene": a.scene, "reference": "west half", "target": "east half",
               "gsd_m": round(rx, 3), "rows": rows, "picture": str(a.picture),
               "panels": "layout | real | tiny v1 | exemplar + reference | "
                         "class-patch fill"}  # fmt: skip
    (out / "reference_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
