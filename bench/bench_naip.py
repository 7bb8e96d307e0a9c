"""Scale and domain at 5 m: the NAIP series (North Dakota, RGB + NIR), with pseudo-labels.

Every date is put on one common 5 m grid (the dates' grids differ by a pixel or two; nearest
neighbour, so pixels stay real) and pseudo-labelled (``rs_seg2any.quality.pseudo_labels``,
``worldcover`` ids). Each date is split down the middle: the west half is the reference, the
east half's pseudo-label layout is what the candidates render; they are scored against the
real east half.

``realism`` (issue 10): per date, ``exemplar + reference`` (exemplar backend with the west
half as ``--reference-image`` and its pseudo-label raster as ``--reference-labels``), ``tiny
v1`` (the shipped default), ``class-patch fill`` and ``flat paint`` (both built from the west
half), rendered by the generate job at the default tiling. Scores: per-class colour distance
(Delta E) and saturation ratio, texture distance, seam line ratios, and the classifier test
(C2ST, fixed protocol) pooled over the dates, with its controls (flat paint, blurred real,
real vs real). A half is 722 x 466 px: the protocol's 128-px blocks of the 2x-downsampled
half give few 64-px crops per date, so the dates are pooled (counts printed).

``lora`` (issue 14): an adapter trained on the west halves of the dates (each date moved to
its own place, so one polygon layer serves all) with ``train-lora``'s own entry point, then
the east halves rendered by the base model and by the adapted model in the same run: held-out
denoising loss, per-class colour and texture distance and the C2ST, before vs after.

    OMP_NUM_THREADS=1 python bench/bench_naip.py realism --out /tmp/naip
    OMP_NUM_THREADS=1 python bench/bench_naip.py lora --steps 300 --out /tmp/naip
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import rasterio
import torch
from affine import Affine
from odc.geo.geobox import GeoBox
from PIL import Image
from rasterio.warp import Resampling, reproject

from rs_seg2any.quality.baselines import ClassPatchFill, FlatPainter, blurred
from rs_seg2any.quality.c2st import C2STResult, c2st, validity
from rs_seg2any.quality.colour import colour_scores
from rs_seg2any.quality.pseudo_labels import (
    CLASSES,
    TAXONOMY,
    PseudoLabelRules,
    pseudo_labels,
    write_label_raster,
    write_polygons,
)
from rs_seg2any.quality.scenes import RenderSettings, layout_from_labels, render
from rs_seg2any.quality.seams import seam_scores
from rs_seg2any.quality.texture import texture_scores
from rs_seg2any.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "opengeos_naip_landsat" / "naip"
CRS = "EPSG:26914"
RES = 5.0
ALL_DATES = (
    "20090818",
    "20100629",
    "20120731",
    "20140720",
    "20150926",
    "20160816",
    "20170827",
    "20180716",
    "20190904",
    "20200831",
)
DATES = ("20100629", "20140720", "20170827", "20190904")
"""The dates run by default: June to September, four looks (2 CPU cores shared: each half
rendered by each candidate costs about a CPU minute)."""
RULES: dict[str, PseudoLabelRules | None] = {"rules": None}
"""Pseudo-label rules of this run (``--smooth``; None: the defaults)."""
PALETTE = {
    80: (6, 154, 243),
    40: (255, 187, 34),
    30: (255, 255, 76),
    60: (180, 180, 180),
    50: (250, 0, 0),
}


def common_grid(paths: list[Path]) -> tuple[Affine, tuple[int, int]]:
    """The largest 5 m grid inside every date's footprint (origin on the latest west/north)."""
    bounds = []
    for p in paths:
        with rasterio.open(p) as s:
            bounds.append(s.bounds)
    left, top = max(b.left for b in bounds), min(b.top for b in bounds)
    right, bottom = min(b.right for b in bounds), max(b.bottom for b in bounds)
    w, h = int((right - left) // RES), int((top - bottom) // RES)
    return Affine(RES, 0, left, 0, -RES, top), (h, w)


def align(path: Path, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """The date's 4 bands on the common grid, ``(H, W, 4)`` uint8 (nearest neighbour)."""
    out = np.zeros((4, *shape), np.uint8)
    with rasterio.open(path) as s:
        for b in range(4):
            reproject(
                rasterio.band(s, b + 1),
                out[b],
                dst_transform=transform,
                dst_crs=CRS,
                resampling=Resampling.nearest,
            )
    return out.transpose(1, 2, 0)


def write_tif(path: Path, data: np.ndarray, transform: Affine) -> Path:
    bands = data[None] if data.ndim == 2 else data.transpose(2, 0, 1)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=bands.shape[2],
        height=bands.shape[1],
        count=bands.shape[0],
        dtype="uint8",
        crs=CRS,
        transform=transform,
    ) as dst:
        dst.write(bands)
        if bands.shape[0] == 4:
            for i, name in enumerate(("red", "green", "blue", "nir")):
                dst.set_band_description(i + 1, name)
    return path


def prepare(dates: list[str], out: Path) -> list[dict[str, Any]]:
    """Aligned dates, their pseudo-labels, west/east halves and their grids."""
    paths = [DATA / f"m_4709963_se_14_1_{d}.tif" for d in dates]
    transform, (h, w) = common_grid(paths)
    half = w // 2
    scenes = []
    for d, p in zip(dates, paths, strict=True):
        img = align(p, transform, (h, w))
        lab = pseudo_labels(img, RULES["rules"])
        west = transform
        east = transform * Affine.translation(half, 0)
        folder = out / "scenes" / d
        folder.mkdir(parents=True, exist_ok=True)
        prof = {"crs": CRS, "transform": west}
        write_tif(folder / "image.tif", img, transform)
        write_tif(folder / "west.tif", img[:, :half], west)
        write_label_raster(folder / "west_labels.tif", lab[:, :half], prof)
        write_tif(folder / "east.tif", img[:, half:], east)
        write_label_raster(
            folder / "east_labels.tif", lab[:, half:], {"crs": CRS, "transform": east}
        )
        scenes.append(
            {
                "date": d,
                "image": img,
                "labels": lab,
                "half": half,
                "west": west,
                "east": east,
                "folder": folder,
                "shares": {
                    CLASSES[int(c)]: round(float((lab == c).mean()), 3) for c in np.unique(lab)
                },
            }
        )
    return scenes


def cases(scenes: list[dict[str, Any]], both: bool) -> list[dict[str, Any]]:
    """One case per date and direction: the reference half and the target half (the other
    one). ``both``: also east -> west, doubling the target area the classifier sees."""
    out = []
    for s in scenes:
        h = s["half"]
        west, east = (slice(None), slice(0, h)), (slice(None), slice(h, None))
        dirs = [("west", west, "east", east, s["east"])]
        if both:
            dirs.append(("east", east, "west", west, s["west"]))
        for ref, rsl, tgt, tsl, ttr in dirs:
            out.append(
                {
                    "date": s["date"],
                    "name": f"{s['date']}_{ref[0]}{tgt[0]}",
                    "ref_image": s["folder"] / f"{ref}.tif",
                    "ref_labels": s["folder"] / f"{ref}_labels.tif",
                    "ref_rgb": s["image"][rsl][..., :3],
                    "ref_lab": s["labels"][rsl],
                    "real": s["image"][tsl][..., :3],
                    "real4": s["image"][tsl],
                    "labels": s["labels"][tsl],
                    "transform": ttr,
                }
            )
    return out


def score(
    images: list[np.ndarray], real: list[np.ndarray], labels: list[np.ndarray]
) -> dict[str, Any]:
    c = colour_scores(images, real, labels, erode=1, min_pixels=64)
    t = texture_scores(images, real, labels, erode=1, min_pixels=64)
    seams = [seam_scores(i, 256, 64) for i in images]
    # per case too: pooled class means over both directions cancel the reference-target gap
    # (each half is once the reference, once the target); a case is one date, one direction
    per = [
        (
            colour_scores([g], [r], [lab], erode=1, min_pixels=64).mean_delta_e,
            texture_scores([g], [r], [lab], erode=1, min_pixels=64).mean_distance,
        )
        for g, r, lab in zip(images, real, labels, strict=True)
    ]
    return {
        "delta_e_per_case": round(float(np.mean([x[0] for x in per])), 2),
        "texture_per_case": round(float(np.mean([x[1] for x in per])), 4),
        "delta_e": round(c.mean_delta_e, 2),
        "saturation_ratio": round(c.saturation_ratio, 3),
        "texture": round(t.mean_distance, 4),
        "sharpness": round(t.mean_sharpness, 3),
        "tile_line_worst": round(float(np.mean([s.tile_worst for s in seams])), 3),
        "token_line_worst": round(float(np.mean([s.token_worst for s in seams])), 3),
        "delta_e_by_class": {CLASSES[q]: round(v, 2) for q, v in c.delta_e.items()},
        "texture_by_class": {CLASSES[q]: round(v, 4) for q, v in t.distance.items()},
    }


def c2st_row(real: list[np.ndarray], cand: list[np.ndarray]) -> C2STResult:
    t0 = time.perf_counter()
    res = c2st(real, cand)
    print(
        f"    c2st {res.mean:.3f} +- {res.std:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True
    )
    return res


def layouts_of(cs: list[dict[str, Any]]) -> list[Any]:
    tax = load_taxonomy(TAXONOMY)
    return [
        layout_from_labels(c["labels"], tax, GeoBox(c["labels"].shape, c["transform"], CRS))
        for c in cs
    ]


def render_all(
    gen: Any, scenes: list[dict[str, Any]], layouts: list[Any], work: Path, tag: str
) -> list[np.ndarray]:
    images = []
    t0 = time.perf_counter()
    for s, lay in zip(scenes, layouts, strict=True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            images.append(render(gen(s), [lay], work / tag / s["name"], RenderSettings())[0])
        for c in {str(c.message) for c in caught}:
            print(f"  {tag} {s['name']}: warning: {c}")
    print(f"  {tag}: rendered {len(scenes)} halves in {time.perf_counter() - t0:.0f} s", flush=True)
    return images


def picture(
    path: Path, cs: list[dict[str, Any]], columns: dict[str, list[np.ndarray]], rows: int = 2
) -> None:
    """One row per case: layout | real | every column; halves shown at half size."""
    lines = []
    pick = [i for i, c in enumerate(cs) if c["name"].endswith("we")][:rows] or list(range(rows))
    for i in pick:
        lab = cs[i]["labels"]
        pal = np.zeros((256, 3), np.uint8)
        for c, v in PALETTE.items():
            pal[c] = v
        panels = [pal[lab], cs[i]["real"]] + [v[i][..., :3] for v in columns.values()]
        h = lab.shape[0]
        gap = np.full((h, 6, 3), 255, np.uint8)
        lines.append(np.concatenate([x for p in panels for x in (p, gap)][:-1], axis=1))
        lines.append(np.full((6, lines[-1].shape[1], 3), 255, np.uint8))
    grid = np.concatenate(lines[:-1], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).reduce(2).save(path, optimize=True)


def water_looks(cs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean RGB of water (eroded) in the reference half and in the real target half, per
    case: where they differ, the reference cannot give the target's lakes their colour."""
    from scipy.ndimage import binary_erosion

    out = {}
    for c in cs:
        r = binary_erosion(c["ref_lab"] == 80, iterations=2)
        t = binary_erosion(c["labels"] == 80, iterations=2)
        if r.sum() >= 64 and t.sum() >= 64:
            out[c["name"]] = {
                "reference": [round(float(v), 1) for v in c["ref_rgb"][r].mean(0)],
                "target": [round(float(v), 1) for v in c["real"][t].mean(0)],
            }
    return out


def realism(
    cs: list[dict[str, Any]], out: Path, pic: Path, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    from rs_seg2any.generators.registry import load_generator

    layouts = layouts_of(cs)
    real = [c["real"] for c in cs]
    labels = [c["labels"] for c in cs]
    images: dict[str, list[np.ndarray]] = {}
    rows: dict[str, Any] = {"real (target half)": score(real, real, labels)}
    tests: dict[str, C2STResult] = {}
    partial = out / "realism_partial.json"

    def keep(k: str, imgs: list[np.ndarray], classify: bool = True) -> None:
        """Score one candidate now and record it (a cut run keeps what it measured)."""
        images[k] = imgs
        np.savez_compressed(out / f"images_{k.split()[0]}.npz", *imgs)
        rows[k] = score(imgs, real, labels)
        if classify:
            tests[k] = c2st_row(real, imgs)
            rows[k]["c2st"], rows[k]["c2st_std"] = round(tests[k].mean, 3), round(tests[k].std, 3)
        partial.write_text(json.dumps(rows, indent=1))

    def exemplar(c: dict[str, Any]) -> Any:
        return load_generator(
            "exemplar", reference_image=str(c["ref_image"]), reference_labels=str(c["ref_labels"])
        )

    print("  classifier controls:", flush=True)
    flat = [FlatPainter.from_pairs([c["ref_rgb"]], [c["ref_lab"]])(c["labels"]) for c in cs]
    keep("flat paint", flat)
    keep("blurred real", [blurred(r) for r in real])
    tests["real vs real"] = c2st_row(real, real)
    rows["real (target half)"]["c2st"] = round(tests["real vs real"].mean, 3)
    rows["real (target half)"]["c2st_std"] = round(tests["real vs real"].std, 3)
    valid = validity(tests["flat paint"], tests["blurred real"], tests["real vs real"])
    print(f"  valid: {valid.to_dict()}", flush=True)
    if "exemplar" not in skip:
        keep(
            "exemplar + reference",
            [i[..., :3] for i in render_all(exemplar, cs, layouts, out, "exemplar")],
        )
    fills = [
        ClassPatchFill.from_pairs([c["ref_rgb"]], [c["ref_lab"]], patch=16, per_class=48)(
            c["labels"]
        )
        for c in cs
    ]
    keep("class-patch fill", fills)
    if "tiny" not in skip:
        v1 = load_generator("tiny")
        keep(
            "tiny v1 (shipped)",
            [i[..., :3] for i in render_all(lambda c: v1, cs, layouts, out, "tiny")],
        )
    any_t = next(iter(tests.values()))
    cols = [k for k in ("tiny v1 (shipped)", "exemplar + reference") if k in images]
    picture(pic, cs, {k: images[k] for k in cols})
    print(
        f"{'candidate':24s} {'C2ST':>6s} {'sd':>5s} {'dE':>6s} {'sat/real':>8s} {'texture':>8s} "
        f"{'tile':>5s} {'token':>5s}"
    )
    for k, r in rows.items():
        print(
            f"{k:24s} {r.get('c2st', float('nan')):6.3f} {r.get('c2st_std', float('nan')):5.3f} "
            f"{r.get('delta_e', float('nan')):6.2f} "
            f"{r.get('saturation_ratio', float('nan')):8.3f} "
            f"{r.get('texture', float('nan')):8.4f} {r.get('tile_line_worst', float('nan')):5.2f} "
            f"{r.get('token_line_worst', float('nan')):5.2f}"
        )
    return {
        "cases": [c["name"] for c in cs],
        "rows": rows,
        "c2st_valid": valid.to_dict(),
        "c2st_test_crops_per_side": {"real": any_t.test_crops[0], "candidate": any_t.test_crops[1]},
        "c2st_train_crops_per_side_and_seed": any_t.train_crops,
        "water_mean_rgb": water_looks(cs),
        "picture": str(pic),
        "panels": "layout | real | " + " | ".join(cols),
    }


def controls(cs: list[dict[str, Any]]) -> dict[str, Any]:
    """The classifier's three validity controls alone (no rendering), and why flat paint is
    hard here: fine detail (mean |grey - blur 1.5 px|) of the real and the flat-paint test
    crops after the protocol's downsampling and JPEG, and how fragmented the layouts are."""
    from scipy.ndimage import gaussian_filter

    from rs_seg2any.quality import c2st as c2

    p = c2.C2STProtocol()
    real = [c["real"] for c in cs]
    flat = [FlatPainter.from_pairs([c["ref_rgb"]], [c["ref_lab"]])(c["labels"]) for c in cs]
    tests = {
        "flat paint": c2st_row(real, flat),
        "blurred real": c2st_row(real, [blurred(r) for r in real]),
        "real vs real": c2st_row(real, real),
    }

    def detail(crops: np.ndarray) -> np.ndarray:
        g = crops.astype(np.float32).mean(-1)
        return np.abs(g - gaussian_filter(g, (0, 1.5, 1.5))).mean((1, 2))

    rt = detail(c2._CropSource([c2.prepare(r, p) for r in real], c2.REAL_TEST, p, 32).all())
    ft = detail(c2._CropSource([c2.prepare(f, p) for f in flat], c2.CAND_TEST, p, 32).all())

    def edges(lab: np.ndarray) -> float:
        d = lab[::2, ::2]
        return float(((d[1:] != d[:-1])[:, :-1] | (d[:, 1:] != d[:, :-1])[:-1]).mean())

    v = validity(tests["flat paint"], tests["blurred real"], tests["real vs real"])
    return {
        "c2st": {k: {"mean": round(t.mean, 3), "std": round(t.std, 3)} for k, t in tests.items()},
        "valid": v.to_dict(),
        "test_crops": tests["flat paint"].test_crops,
        "detail_real_p10_p50": [round(float(x), 2) for x in np.percentile(rt, [10, 50])],
        "detail_flat_p50_p90": [round(float(x), 2) for x in np.percentile(ft, [50, 90])],
        "real_below_flat_p90": round(float((rt < np.percentile(ft, 90)).mean()), 3),
        "layout_boundary_share": round(float(np.mean([edges(c["labels"]) for c in cs])), 4),
    }


def lora(
    scenes: list[dict[str, Any]],
    out: Path,
    steps: int,
    minutes: float,
    bands: str | None,
    pic: Path | None,
) -> dict[str, Any]:
    """Train one adapter on every date's west half; before vs after on the east halves."""
    import geopandas as gpd

    from rs_seg2any.generators.registry import load_generator
    from rs_seg2any.lora.params import LoraTrainParams
    from rs_seg2any.lora.train import train_lora
    from rs_seg2any.options import LayerOptions

    tag = "rgbn" if bands and len(bands.split(",")) == 4 else "rgb"
    work = out / f"lora_{tag}"
    work.mkdir(parents=True, exist_ok=True)
    images, frames = [], []
    for i, s in enumerate(scenes):  # each date 20 km further east: disjoint places, one layer
        moved = Affine.translation(20_000.0 * i, 0) * s["west"]
        images.append(str(write_tif(work / f"{s['date']}.tif", s["image"], moved)))
        poly = work / f"{s['date']}.gpkg"
        write_polygons(poly, s["labels"], {"crs": CRS, "transform": moved})
        frames.append(gpd.read_file(poly))
    layer_path = work / "labels.gpkg"
    gpd.GeoDataFrame(
        np.concatenate([np.asarray(f.values) for f in frames]),
        columns=frames[0].columns,
        geometry="geometry",
        crs=CRS,
    ).to_file(layer_path, driver="GPKG", layer="labels")
    params = LoraTrainParams(
        images=tuple(images),
        labels=str(layer_path),
        bands=bands,
        rgb="1,2,3" if tag == "rgbn" else None,
        val_side="east",
        val_fraction=0.5,
        batch=8,
        crop=48,
        max_steps=steps,
        minutes=minutes,
        val_every=50,
        ckpt_every=100,
        lr=2e-3,
        rank=8,
        segmenter_steps=0,
        restart=True,
        licence="NAIP (USDA, public domain) via opengeos/data (MIT)",
    )
    layer = LayerOptions(class_field="class", taxonomy=TAXONOMY)
    t0 = time.perf_counter()
    res = train_lora(params, layer, work / "adapter")
    secs = time.perf_counter() - t0
    m = res.metrics
    print(
        f"  {tag}: trained {secs:.0f} s; val flow loss {m['val_flow_loss_before']:.4f} -> "
        f"{m['val_flow_loss_after']:.4f}",
        flush=True,
    )
    cs = cases(scenes, both=False)
    layouts = layouts_of(cs)
    real = [c["real"] for c in cs]
    labels = [c["labels"] for c in cs]
    base, adapted = load_generator("tiny"), load_generator("tiny", lora=[str(work / "adapter")])
    before = [i[..., :3] for i in render_all(lambda s: base, cs, layouts, work, "before")]
    after_full = render_all(lambda s: adapted, cs, layouts, work, "after")
    after = [i[..., :3] for i in after_full]
    row: dict[str, Any] = {
        "bands": bands or "all",
        "train_s": round(secs, 1),
        **{k: v for k, v in m.items() if not isinstance(v, dict | list)},
    }
    for name, imgs in (("before", before), ("after", after)):
        row[name] = score(imgs, real, labels)
        row[name]["c2st"] = round(c2st_row(real, imgs).mean, 3)
    if tag == "rgbn":  # per band, all held-out pixels: generated vs real
        row["bands_mean_sd"] = {}
        for b, name in enumerate(("red", "green", "blue", "nir")):
            r = np.concatenate([c["real4"][..., b].ravel() for c in cs]).astype(np.float64)
            g = [a[..., b].ravel() for a in after_full if a.shape[-1] > b]
            gg = np.concatenate(g).astype(np.float64) if g else np.zeros(1)
            row["bands_mean_sd"][name] = {
                "real": [round(r.mean(), 1), round(r.std(), 1)],
                "generated": [round(gg.mean(), 1), round(gg.std(), 1)],
            }
        print(f"  per band (mean, sd): {row['bands_mean_sd']}", flush=True)
    if pic is not None:
        picture(pic, cs, {"base": before, "LoRA": after})
    print(json.dumps({tag: row}, default=str), flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("what", choices=("realism", "lora", "controls"))
    ap.add_argument("--dates", default=",".join(DATES))
    ap.add_argument("--out", type=Path, default=Path("/tmp/naip_bench"))
    ap.add_argument("--steps", type=int, default=300, help="LoRA steps, RGB (0: skip)")
    ap.add_argument("--rgbn-steps", type=int, default=200, help="LoRA steps, 4 bands (0: skip)")
    ap.add_argument("--minutes", type=float, default=15.0, help="wall-clock cap per LoRA run")
    ap.add_argument("--picture", type=Path, default=REPO / "docs/images/realism_naip.png")
    ap.add_argument(
        "--both", action="store_true", help="realism: also east half -> west half (2x the crops)"
    )
    ap.add_argument(
        "--smooth",
        default="",
        help="pseudo-label smoothing 'MAJORITY,MIN_AREA' (default 5,24): coarser layouts",
    )
    ap.add_argument("--skip", default="", help="realism: candidates to leave out (exemplar,tiny)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if not DATA.is_dir():
        raise SystemExit(f"needs the shared data at {DATA}")
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if a.smooth:
        maj, mmu = (int(v) for v in a.smooth.split(","))
        RULES["rules"] = PseudoLabelRules(majority=maj, min_area=mmu)
    dates = ALL_DATES if a.dates == "all" else tuple(a.dates.split(","))
    scenes = prepare(list(dates), a.out)
    print(
        f"prepared {len(scenes)} dates in {time.perf_counter() - t0:.0f} s; class shares: "
        + json.dumps({s["date"]: s["shares"] for s in scenes}),
        flush=True,
    )
    summary: dict[str, Any] = {
        "dates": [s["date"] for s in scenes],
        "gsd_m": RES,
        "reference": "west half",
        "target": "east half",
        "grid_px": list(scenes[0]["image"].shape[:2]),
        "half_px": [scenes[0]["image"].shape[0], scenes[0]["half"]],
    }
    if a.what == "realism":
        summary["directions"] = "west->east, east->west" if a.both else "west->east"
        cs = cases(scenes, a.both)
        summary["realism"] = realism(cs, a.out, a.picture, tuple(a.skip.split(",")))
    elif a.what == "controls":
        summary["directions"] = "west->east, east->west" if a.both else "west->east"
        summary["smooth"] = a.smooth or "5,24"
        summary["controls"] = controls(cases(scenes, a.both))
    else:
        if a.steps > 0:
            summary["lora_rgb"] = lora(
                scenes, a.out, a.steps, a.minutes, "1,2,3", a.out / "lora_rgb.png"
            )
        if a.rgbn_steps > 0:
            summary["lora_rgbn"] = lora(scenes, a.out, a.rgbn_steps, a.minutes, "1,2,3,4", None)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    (a.out / f"naip_{a.what}_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
