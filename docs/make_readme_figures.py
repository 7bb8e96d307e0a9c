"""Re-create the README pictures from the demo job: ``python docs/make_readme_figures.py``."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import rasterio
from matplotlib.colors import ListedColormap

from rs_seg2any.cli import main
from rs_seg2any.demo import DEMO_TAXONOMY, write_demo_layer
from rs_seg2any.taxonomy import load_taxonomy

HERE = Path(__file__).resolve().parent


def class_colours() -> np.ndarray:
    """RGB in [0, 1] of each class id of the demo taxonomy (a look-up table for label maps)."""
    colours = np.zeros((256, 3))
    for c in load_taxonomy(DEMO_TAXONOMY).classes:
        colours[c.id] = np.array(c.colour) / 255
    return colours


def layout_figure(dest: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        layer = write_demo_layer(Path(tmp) / "demo_town.gpkg")
        out = Path(tmp) / "out"
        args = ["layout", str(layer), "--class-field", "landcover", "--description-field",
                "description", "--taxonomy", DEMO_TAXONOMY, "--resolution", "0.5",
                "--progress", "none", "--out", str(out)]  # fmt: skip
        if main(args) != 0:
            sys.exit("demo job failed")
        maps = {}
        for name in ("label", "instance", "contour"):
            with rasterio.open(out / f"{name}.tif") as src:
                maps[name] = src.read(1)
    taxonomy = load_taxonomy(DEMO_TAXONOMY)
    colours = class_colours()
    rng = np.random.default_rng(0)
    inst_colours = rng.uniform(0.2, 1.0, (int(maps["instance"].max()) + 1, 3))
    inst_colours[0] = 0
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), dpi=90)
    axes[0].imshow(colours[maps["label"]], interpolation="nearest")
    axes[0].set_title("label.tif (class ids, colour table)")
    axes[1].imshow(inst_colours[maps["instance"]], interpolation="nearest")
    axes[1].set_title("instance.tif (one id per polygon part)")
    axes[2].imshow(
        maps["contour"], cmap=ListedColormap(["black", "white"]), interpolation="nearest"
    )
    axes[2].set_title("contour.tif (Seg2Any entity outlines)")
    for ax in axes:
        ax.set_axis_off()
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=np.array(c.colour) / 255) for c in taxonomy.classes
    ]
    fig.legend(
        handles, [c.name for c in taxonomy.classes], loc="lower center", ncol=6, frameon=False
    )
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    fig.savefig(dest)
    plt.close(fig)
    return dest


def demo_image_figure(dest: Path) -> Path:
    """The demo town rendered by the default backend (the output of ``make demo``)."""
    with tempfile.TemporaryDirectory() as tmp:
        layer = write_demo_layer(Path(tmp) / "demo_town.gpkg")
        out = Path(tmp) / "out"
        args = ["generate", str(layer), "--class-field", "landcover", "--description-field",
                "description", "--taxonomy", DEMO_TAXONOMY, "--resolution", "0.5", "--seed", "1",
                "--progress", "none", "--out", str(out)]  # fmt: skip
        if main(args) != 0:
            sys.exit("demo generate job failed")
        return demo_output_figure(out, dest)


def demo_output_figure(out: Path, dest: Path) -> Path:
    """Layout and image of a finished demo job folder ``out`` (e.g. ``demo_out/``)."""
    with rasterio.open(out / "image.tif") as src:
        image = src.read().transpose(1, 2, 0)
    with rasterio.open(out / "label.tif") as src:
        label = src.read(1)
    colours = class_colours()
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.4), dpi=90)
    axes[0].imshow(colours[label], interpolation="nearest")
    axes[0].set_title("layout (label.tif)")
    axes[1].imshow(image)
    axes[1].set_title("image.tif, default backend (exemplar) on CPU")
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(dest)
    plt.close(fig)
    return dest


def held_out_figure(dest: Path, data: Path, rows: int = 4, size: int = 256) -> Path:
    """Layout | real | tiny v1 on held-out tile_7 crops (the tiny network never saw tile_7)."""
    import torch

    from rs_seg2any.generators.registry import load_generator
    from rs_seg2any.generators.tiny.text import default_encoder
    from rs_seg2any.train.dubai import collate
    from rs_seg2any.train.evaluate import _layout_rgb, held_out_crops

    gen = load_generator("tiny")
    model, ae = gen._impl.model, gen._impl.ae  # type: ignore[attr-defined]
    from rs_seg2any.generators.base import DEFAULT_GUIDANCE, DEFAULT_STEPS
    from rs_seg2any.generators.tiny.sampler import sample

    crops = held_out_crops(data, rows, size, 32, seed=7)  # the crops of the evaluation
    enc = default_encoder()
    fig, axes = plt.subplots(rows, 3, figsize=(10.5, 3.5 * rows), dpi=80)
    for i, crop in enumerate(crops):
        _, cond = collate([crop], enc, 32, None)
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
            x = sample(model, cond, steps=DEFAULT_STEPS, guidance=DEFAULT_GUIDANCE, seed=i, ae=ae)
        img = ((x[0].float().permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255)
        panels = (_layout_rgb(crop.classes), crop.image, img.astype(np.uint8))
        for ax, panel, title in zip(axes[i], panels, ("layout", "real (tile_7)", "generated"),
                                    strict=True):  # fmt: skip
            ax.imshow(panel)
            ax.set_axis_off()
            if i == 0:
                ax.set_title(title)
    fig.tight_layout()
    fig.savefig(dest)
    plt.close(fig)
    return dest


if __name__ == "__main__":
    print(layout_figure(HERE / "images" / "layout_demo.png"))
    print(demo_image_figure(HERE / "images" / "demo_generated.png"))
    shared = HERE.parents[1] / "shared" / "data" / "dubai_aerial"
    if shared.is_dir():
        print(held_out_figure(HERE / "images" / "tiny_held_out.png", shared))
    else:
        print(f"{shared} absent: skipping the held-out figure")
