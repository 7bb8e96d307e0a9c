"""``detection-set``: objects over a background, rare objects inserted, chipped and exported.

The background is a real georeferenced image (``image``), or the layout rendered with the
objects drawn on top of it (each object one entity with its class and description), so the
generated pixels show the objects the labels name. Rare objects are then inserted through
the generator's edit path (:mod:`.insert`), the scene is cut into chips and written in every
format (:mod:`.export`), then the filter report and the STAC catalog are written.

Every input is read and checked before the first file is written; a failure leaves the
output folder as it was (the job lock and the atomic writer take care of the rest).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from odc.geo.geobox import GeoBox

from ..errors import InputError, LayoutError
from ..inputs import open_raster, raster_grid, read_vector
from ..scenarios.common import Polygons, edit_job, exclusive_folder, extend_taxonomy, render_base
from ..scenarios.spec import ScenarioInputs
from .chips import chip_windows
from .export import ChipSettings, export_scene
from .insert import load_rules, sample_objects
from .instances import Scene, scene_from_polygons
from .params import DetectionParams
from .report import ObjectScores, ReportWriter, Thresholds, fidelity, leakage


@dataclass
class DetectionSetResult:
    out: Path
    files: dict[str, Path]

    def outputs(self) -> dict[str, Path]:
        return dict(self.files)


def _check_fields(frame: gpd.GeoDataFrame, p: DetectionParams, what: str) -> None:
    for name in (p.object_class_field, p.object_description_field):
        if name is not None and name not in frame.columns:
            fields = ", ".join(str(c) for c in frame.columns if c != "geometry")
            raise LayoutError(f"{what}: field '{name}' not found; fields are: {fields}")
    if frame.crs is None:
        raise InputError(f"{what}: the layer has no CRS")


def _with_objects(base: Polygons, frame: gpd.GeoDataFrame, classes: list[str],
                  texts: list[str]) -> Polygons:  # fmt: skip
    """``base`` with the objects drawn on top (object classes the taxonomy lacks are added)."""
    from ..scenarios.planning import _zones_on_top

    tax = base.taxonomy
    for name in dict.fromkeys(classes):
        tax, _ = extend_taxonomy(tax, {"name": name, "description": name, "priority": 1000})
    desc_field = base.description_field or "description"
    new = gpd.GeoDataFrame(
        {base.class_field: classes, desc_field: texts}, geometry=list(frame.geometry), crs=frame.crs
    )
    old = base.frame
    if old.crs is not None and old.crs != new.crs:
        new = new.to_crs(old.crs)
    merged = gpd.GeoDataFrame(pd.concat([old, new], ignore_index=True), crs=new.crs)
    after = replace(base, frame=merged, description_field=desc_field, taxonomy=tax)
    return _zones_on_top(after, len(old))


def _object_texts(frame: gpd.GeoDataFrame, p: DetectionParams) -> tuple[list[str], list[str]]:
    classes = [str(v) for v in frame[p.object_class_field]]
    field = p.object_description_field
    texts = [str(v) for v in frame[field]] if field else list(classes)
    return classes, texts


def _read_image(path: Path) -> tuple[np.ndarray, str, int]:
    with open_raster(path, "image") as src:
        data: np.ndarray = src.read()
        return data, str(src.dtypes[0]), int(src.count)


def run_detection_set(inputs: ScenarioInputs, p: DetectionParams) -> DetectionSetResult:
    """The scenario's ``run``: check everything, then build the set into ``inputs.out``."""
    objects = insert = None
    if p.objects:
        objects = read_vector(p.objects, "--objects")
        _check_fields(objects, p, "--objects")
    if p.insert:
        insert = read_vector(p.insert, "--insert")
        _check_fields(insert, p, "--insert")
    if objects is None and insert is None and not p.insert_count:
        raise InputError("detection-set needs --objects, --insert or --insert-count")
    rules = load_rules(p.insert_rules) if p.insert_count else {}
    for kind in p.insert_kind:
        if kind not in rules:
            raise InputError(f"unknown --insert-kind {kind}; kinds are: {', '.join(rules)}")
    if p.image:
        grid = raster_grid(p.image, "--image")
    elif inputs.polygons is not None and inputs.grid is not None:
        grid = inputs.grid
    else:
        raise InputError("detection-set needs a background: --image, or --layout to render")
    if p.insert_count and inputs.polygons is None:
        raise InputError(
            "sampled insertion needs --layout (its land cover says where water or bare land "
            "is); or give the places with --insert"
        )
    settings = p.settings(inputs.sampler.seed)
    chip_windows((int(grid.shape[0]), int(grid.shape[1])), settings.size, settings.stride)
    polys = inputs.polygons
    if polys is not None:
        polys.layout(grid)  # the layout validated on the grid before anything is written
    return _build(inputs.out, inputs, p, grid, objects, insert, rules, settings)


@exclusive_folder
def _build(out: Path, inputs: ScenarioInputs, p: DetectionParams, grid: GeoBox,
           objects: gpd.GeoDataFrame | None, insert: gpd.GeoDataFrame | None,
           rules: dict[str, Any], settings: ChipSettings) -> DetectionSetResult:  # fmt: skip
    opts = inputs.options()
    files: dict[str, Path] = {}
    layout = inputs.polygons
    if objects is not None:
        scene = scene_from_polygons(objects, grid, p.object_class_field, p.object_description_field)
    else:
        scene = Scene(grid, np.zeros(tuple(grid.shape), np.uint32), [])
    if not p.image and objects is not None:
        assert layout is not None
        layout = _with_objects(layout, objects, *_object_texts(objects, p))
    # where the rare objects go, before anything is rendered
    wanted = _inserted(p, grid, insert, layout, scene, rules, inputs.sampler.seed)
    ins = None
    if wanted is not None:
        ins = scene_from_polygons(wanted, grid, "class", "description", source="inserted")
        if not ins.objects:
            raise InputError("--insert: no object covers a pixel of the scene")
    if p.image:
        base = Path(p.image)
    else:
        assert layout is not None
        res = render_base(layout, grid, out / "scene", inputs.generator(), opts, inputs.progress)
        base = res.outputs["image"]
    final, scores = base, ObjectScores()
    if wanted is not None and ins is not None:
        shift = len(scene.objects)
        scene = scene.add(ins)
        after = _with_objects(layout or Polygons.empty(grid.crs), wanted,
                              list(wanted["class"]), list(wanted["description"]))  # fmt: skip
        job = edit_job(after, grid, base, ins.instances > 0, out / "inserted",
                       inputs.generator(), opts, inputs.progress)  # fmt: skip
        final = job.outputs["image"]
        before_px, after_px = _read_image(base)[0], _read_image(final)[0]
        ids = [shift + o.id for o in ins.objects]
        scores.leakage = leakage(scene, before_px, after_px, ids)
        files["inserted"] = out / "inserted" / "objects.gpkg"
        from ..atomic import atomic_output

        with atomic_output(files["inserted"]) as tmp:
            wanted.to_file(tmp, layer="objects", driver="GPKG")
    with open_raster(final, "image") as src:
        dtype, bands = str(src.dtypes[0]), int(src.count)
    if p.segmenter:
        scores.fidelity = fidelity(scene, _read_image(final)[0], Path(p.segmenter))
    thresholds = Thresholds(p.min_visible, p.max_leakage, p.min_fidelity, not p.no_filter)
    from .. import __version__

    provenance = {
        "generator": inputs.sampler.backend if (not p.image or wanted is not None) else "none",
        "version": __version__,
        "seed": inputs.sampler.seed,
        "background": "real" if p.image else "generated",
    }
    info = {"description": "rs_seg2any detection set", "version": __version__, **provenance}
    report = ReportWriter(out, scores, thresholds)
    try:
        exported, records, dropped = export_scene(
            out, scene, final, settings, info=info,
            object_checks=lambda oid: scores.reasons(oid, thresholds), filter=thresholds.filter,
            on_record=report.add,
        )  # fmt: skip
    except BaseException:
        report.abort()
        raise
    files.update(exported)
    files["image"] = final
    # objects no exported chip holds (e.g. only in chips dropped between two splits' cells):
    # said, never lost silently; an inserted one the user asked for is also warned about
    unlabelled = [o for o in scene.objects if o.id not in report.labelled]
    summary = {**provenance, "chips_dropped_by_split_buffer": dropped,
               "objects": len(scene.objects),
               "objects_in_no_chip": [{"object_id": o.id, "category": o.category,
                                       "source": o.source} for o in unlabelled]}  # fmt: skip
    lost = [o for o in unlabelled if o.source == "inserted"]
    if lost:
        import warnings

        warnings.warn(
            f"{len(lost)} inserted object(s) lie in no exported chip (only in chips dropped "
            "on the border between two splits' cells, or cut below --min-visible): ids "
            f"{[o.id for o in lost]}; see objects_in_no_chip in report.json",
            UserWarning, stacklevel=2,
        )  # fmt: skip
    files.update(report.close(summary))
    if not p.no_stac:
        from .stac import write_catalog

        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        files["stac"] = write_catalog(
            out, records, grid, scene.categories, dtype=dtype, bands=bands, datetime=now,
            provenance=provenance, description="rs_seg2any detection set",
        )  # fmt: skip
    return DetectionSetResult(out, files)


def _inserted(
    p: DetectionParams,
    grid: GeoBox,
    given: gpd.GeoDataFrame | None,
    layout: Polygons | None,
    scene: Scene,
    rules: dict[str, Any],
    seed: int,
) -> gpd.GeoDataFrame | None:
    """The objects to insert: the given ones, then the sampled ones (or None)."""
    parts = []
    if given is not None:
        classes, texts = _object_texts(given, p)
        frame = gpd.GeoDataFrame(
            {"class": classes, "description": texts}, geometry=list(given.geometry), crs=given.crs
        )
        parts.append(frame.to_crs(str(grid.crs.to_wkt())) if grid.crs is not None else frame)
    if p.insert_count:
        assert layout is not None
        from ..raster import rasterize_window

        lay = layout.layout(grid)
        labels = rasterize_window(lay, slice(0, grid.shape[0]), slice(0, grid.shape[1])).label
        sampled = sample_objects(
            labels, lay.taxonomy, grid, list(p.insert_kind), p.insert_count, rules,
            occupied=scene.instances > 0, seed=seed, description=p.insert_description,
        )  # fmt: skip
        parts.append(sampled[["class", "description", "geometry"]])
    if not parts:
        return None
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parts[0].crs)
