"""``generate --refine``: the loop run on a finished generate job's folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..atomic import write_json
from ..generators.base import Generator
from ..job.tiling import TilePlan
from ..layout import Layout
from .entity import ClassColours
from .loop import Judge, Settings, read_canvas, refine
from .params import RefineParams
from .report import rewrite_image, write_reports


def tile_scores(canvas: Any, final: dict[str, float], min_score: float) -> list[dict[str, Any]]:
    """Per tile of the job's plan: its entities' worst and mean final score, and whether all
    pass (what a user filters a training set by)."""
    rows = []
    for tile in canvas.plan.tiles:
        ids = np.unique(canvas.ents.instances[tile.rows, tile.cols])
        scores = [final[str(int(e))] for e in ids if str(int(e)) in final]
        rows.append({
            "tile": list(tile.index),
            "rows": [tile.rows.start, tile.rows.stop],
            "cols": [tile.cols.start, tile.cols.stop],
            "entities_scored": len(scores),
            "min_score": min(scores) if scores else None,
            "mean_score": float(np.mean(scores)) if scores else None,
            "passed": all(s >= min_score for s in scores),
        })  # fmt: skip
    return rows


def default_colours(class_names: dict[int, str]) -> tuple[ClassColours | None, list[str]]:
    """Real-imagery class colours for a taxonomy: the shipped Dubai bank's, matched by class
    name; None (with a note) when no class of the taxonomy is in it."""
    shipped = ClassColours.shipped()
    wanted = {n for c, n in class_names.items() if c > 0}
    if wanted & set(shipped.mean):
        return shipped, []
    return None, ["colour skipped: no real-imagery statistics for these classes"]


def refine_outputs(
    out: Path,
    layout: Layout,
    generator: Generator,
    params: RefineParams,
    *,
    settings: Settings,
    tile_size: int,
    overlap: int,
    caption: str | None = None,
    colours: ClassColours | None = None,
    segmenter: Any = None,
    fidelity: bool = True,
    region: NDArray[np.bool_] | None = None,
) -> dict[str, Path]:
    """Score ``out``'s entities, refine the failing ones, rewrite image.tif if anything was
    kept, and write the trajectory and quality reports. Returns the files written.
    ``region`` (an edit mask on the grid): only the entities' parts inside it are judged and
    repaired; every pixel outside it stays as it is."""
    from ..job.generate_job import _image_preview
    from ..quality.seams import seam_scores

    out = Path(out)
    plan = TilePlan.for_grid(layout.grid, tile_size=tile_size, overlap=overlap)
    canvas = read_canvas(out, layout, plan, caption)
    if canvas.image.dtype != np.uint8 or canvas.image.shape[2] != generator.bands:
        bands, dtype = canvas.image.shape[2], canvas.image.dtype
        why = f"refine skipped: the image is {bands}-band {dtype}; the generator paints uint8"
        return {"quality": write_json(out / "quality.json", {"skipped": why, "notes": [why]})}
    if region is not None:
        canvas.restrict(region)
    names = layout.taxonomy.names_by_id()
    notes: list[str] = []
    if colours is None:
        colours, notes = default_colours(names)
    judge = Judge(layout.taxonomy, names, colours, segmenter, notes, fidelity)
    original = canvas.image.copy()
    traj = refine(canvas, generator, judge, params, settings)
    traj["seams"] = seam_scores(canvas.image[..., :3], tile_size, overlap).to_dict()
    traj["colour_statistics"] = colours.source if colours is not None else None
    traj["tiles"] = tile_scores(canvas, traj["final"], params.min_score)
    if fidelity:  # the final pixels' descriptions against what the segmenter sees
        from .text import judge_texts

        traj["text_check"] = judge_texts(
            canvas.image, canvas.ents, canvas.texts, layout.taxonomy, segmenter
        )
    outputs = write_reports(out, traj, canvas.ents, names, params.min_score)
    if not np.array_equal(original, canvas.image):
        outputs["image"] = rewrite_image(out / "image.tif", canvas.image)
        outputs["preview"] = _image_preview(out / "image.tif", out / "preview.png")
    return outputs


def refine_generate(
    layout: Layout,
    out: Path,
    generator: Generator,
    params: RefineParams,
    opts: Any,
    tiles: Any,
    progress: Any = None,
    *,
    colours: ClassColours | None = None,
    segmenter: Any = None,
) -> Any:
    """A generate job (``opts``: :class:`~rs_seg2any.scenarios.common.GenOptions`) followed by
    the refine loop; its outputs gain the reports (and the refined image)."""
    import time

    from ..job.generate_job import run_generate_job
    from .loop import CountingGenerator

    counted = CountingGenerator(generator)
    t0 = time.perf_counter()
    res = run_generate_job(
        layout, out, counted, keep_tiles=tiles.keep_tiles, progress=progress, **opts.job_kwargs()
    )
    seconds = time.perf_counter() - t0 if counted.calls else 0.0
    settings = Settings(
        steps=opts.steps,
        guidance=opts.guidance,
        gamma=opts.gamma,
        seed=opts.seed,
        plain_calls=counted.calls or res.tiles_total,
        plain_seconds=seconds,
    )
    res.outputs.update(
        refine_outputs(
            res.out_dir,
            layout,
            generator,
            params,
            settings=settings,
            tile_size=opts.tile_size,
            overlap=opts.overlap,
            caption=opts.caption,
            colours=colours,
            segmenter=segmenter,
        )
    )
    return res
