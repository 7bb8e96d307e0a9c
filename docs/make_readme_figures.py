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
    colours = np.zeros((256, 3))
    for c in taxonomy.classes:
        colours[c.id] = np.array(c.colour) / 255
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


if __name__ == "__main__":
    print(layout_figure(HERE / "images" / "layout_demo.png"))
