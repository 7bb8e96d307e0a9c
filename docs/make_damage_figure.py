"""The README's damage picture: pre | post | damage levels on a real Dubai layout.

The real aerial photo (Dubai tile_2, part 1) is the pre-event image and its hand-made mask,
vectorised, the layout; the shipped default model renders the damage. Row 1: the earthquake
recipe (epicentre at the scene's centre); row 2: the fire recipe (front moving east). The
photo is not georeferenced: it is placed on a local UTM grid at 0.5 m. Prints, per damage
level, how many buildings it has, the share of their pixels re-rendered and how far those
moved (mean absolute difference, 0-255).

    PYTHONPATH=. python docs/make_damage_figure.py [--data ../shared/data] [--crop 384]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import geopandas as gpd
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import rasterio
import rasterio.features
from matplotlib.patches import Patch
from odc.geo.geobox import GeoBox
from PIL import Image
from shapely.geometry import shape

import rs_seg2any as rs
from rs_seg2any.geoio import write_cog
from rs_seg2any.train.dubai import classes_from_mask_rgb

HERE = Path(__file__).resolve().parent
CRS, X0, Y0, RES = "EPSG:32640", 300_000.0, 2_780_000.0, 0.5
NAMES = {1: "building", 2: "land", 3: "road", 4: "vegetation", 5: "water", 6: "unlabeled"}


def dubai_scene(data: Path, crop: int, work: Path) -> tuple[Path, gpd.GeoDataFrame, GeoBox]:
    """The photo as a GeoTIFF and its mask as polygons, on one local 0.5 m grid."""
    root = data / "dubai_aerial" / "tile_2"
    photo = np.asarray(Image.open(root / "images" / "image_part_001.jpg").convert("RGB"))
    mask = np.asarray(Image.open(root / "masks" / "image_part_001.png").convert("RGB"))
    photo, mask = photo[:crop, :crop], classes_from_mask_rgb(mask)[:crop, :crop]
    h, w = mask.shape
    grid = GeoBox.from_bbox((X0, Y0, X0 + w * RES, Y0 + h * RES), CRS, resolution=RES)
    image = write_cog(work / "pre_photo.tif", photo.transpose(2, 0, 1), grid, categorical=False)
    shapes = rasterio.features.shapes(mask.astype(np.int32), transform=grid.affine)
    rows = [(NAMES[int(v)], shape(g)) for g, v in shapes if int(v) in NAMES]
    frame = gpd.GeoDataFrame({"cls": [r[0] for r in rows]}, geometry=[r[1] for r in rows],
                             crs=CRS)  # fmt: skip
    return image, frame, grid


def level_panel(level: np.ndarray, colours: dict[int, tuple[int, ...]]) -> np.ndarray:
    rgb = np.full((*level.shape, 3), 235, dtype=np.uint8)
    for code, colour in colours.items():
        rgb[level == code] = colour[:3]
    return rgb


def building_levels(res: rs.Result, grid: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """Level codes of building pixels, and of area pixels (0 elsewhere)."""
    items = gpd.read_file(res.outputs["damage_polygons"])
    out = []
    for kind in ("building", "area"):
        part = items[items["kind"] == kind].sort_values("level_code")
        shapes = list(zip(part.geometry, part["level_code"].astype(int), strict=True))
        out.append(
            rasterio.features.rasterize(shapes, grid.shape, transform=grid.affine, dtype="uint8")
            if shapes
            else np.zeros(grid.shape, dtype=np.uint8)
        )
    return out[0], out[1]


def report(name: str, res: rs.Result, grid: GeoBox) -> None:
    """Per level: buildings, their pixels, the share re-rendered and how far it moved."""
    pre, post = res.open("before").values, res.open("image").values
    houses, _ = building_levels(res, grid)
    items = gpd.read_file(res.outputs["damage_polygons"])
    moved = np.abs(pre.astype(int) - post.astype(int)).mean(axis=0)
    changed = moved > 0
    print(f"{name}:")
    for code, group in items[items["kind"] == "building"].groupby("level_code"):
        inside = houses == code
        share = changed[inside].mean()
        delta = moved[inside & changed].mean() if share else 0.0
        print(
            f"  {group['level'].iloc[0]:>12}: {len(group):3d} buildings, {int(inside.sum()):6d} "
            f"px, re-rendered {share:4.0%}, mean |post-pre| there {delta:5.1f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE.parents[2] / "shared" / "data")
    ap.add_argument("--crop", type=int, default=384, help="square crop of the photo (px)")
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--out", type=Path, default=HERE / "images" / "damage_pair.png")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="damage-figure-"))
    photo, frame, grid = dubai_scene(args.data, args.crop, work)
    layer = work / "dubai_layout.gpkg"
    frame.to_file(layer)
    common = {"layout": layer, "class_field": "cls", "taxonomy": "dubai_aerial",
              "seed": args.seed, "threads": 1, "progress": "none"}  # fmt: skip
    x0, y0, x1, y1 = grid.boundingbox.bbox
    centre = f"{(x0 + x1) / 2},{(y0 + y1) / 2}"
    quake = rs.damage(work / "quake", image=str(photo), disaster="earthquake", origin=centre,
                      **common)  # fmt: skip
    fire = rs.damage(work / "fire", image=str(photo), disaster="fire",
                     param={"direction_deg": 90.0}, **common)  # fmt: skip
    report("earthquake (epicentre at the centre)", quake, grid)
    report("fire (front moving east)", fire, grid)
    with rasterio.open(quake.outputs["damage_level"]) as src:
        colours = {k: v for k, v in src.colormap(1).items() if 1 <= k <= 4}
    names = ["no damage", "minor", "major", "destroyed"]
    fig, axes = plt.subplots(2, 3, figsize=(13.5, 9.8))
    for row, (res, what) in enumerate(((quake, "earthquake from the centre"),
                                       (fire, "fire moving east"))):  # fmt: skip
        pre = res.open("before").values.transpose(1, 2, 0)
        post = res.open("image").values.transpose(1, 2, 0)
        houses, areas = building_levels(res, grid)
        panel = level_panel(houses, colours)
        ground = level_panel(areas, colours)
        soft = (areas > 0) & (houses == 0)  # areas (burned ground, debris): lighter
        panel[soft] = (0.45 * ground[soft] + 0.55 * 255).astype(np.uint8)
        panels = [(pre, f"pre-event (real photo; {what})"), (post, "post-event"),
                  (panel, "damage level (buildings; areas lighter)")]  # fmt: skip
        for ax, (img, title) in zip(axes[row], panels, strict=True):
            ax.imshow(img)
            ax.set_title(title, fontsize=11)
            ax.set_axis_off()
    handles = [Patch(color=np.array(colours[c][:3]) / 255, label=n)
               for c, n in zip(range(1, 5), names, strict=True)]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 1), h_pad=1.5)
    fig.savefig(args.out, dpi=90)
    rgb = Image.open(args.out).convert("RGB")  # 256 colours: a third of the bytes
    rgb.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        args.out, optimize=True
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
