"""Score generated imagery against real imagery of the same layouts: the ``evaluate`` verb.

``evaluate(candidates, real, labels)`` scores each candidate — images on the real scenes'
grids, a generator (rendered by the generate job on each scene's layout), or a painter (a
function of the label raster) — with every measure at once, because a single number can be
gamed: the real-vs-generated classifier test (:mod:`.c2st`), per-class colour
(:mod:`.colour`) and texture (:mod:`.texture`), line artefacts at the tile and token periods
(:mod:`.seams`) and layout fidelity with the project's segmenter (:mod:`.segmenter`; by
default whenever the labels are in its ``dubai_aerial`` classes). Controls run in the same
call (flat class-colour paint, the real image blurred with sigma 4, real against real) and
decide whether the classifier is valid and what fidelity ratio is no better than paint.
With ``out`` it writes ``report.json`` and ``picture.png`` (layout | real | each candidate
per scene), each atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray
from odc.geo.geobox import GeoBox

from ..errors import GridError, InputError, LayoutError
from ..generators.base import Generator
from ..geoio import atomic_output, ensure_writable_dir
from ..layout import Layout
from ..progress import NullProgress, Progress
from ..taxonomy import Taxonomy, load_taxonomy
from .baselines import FlatPainter, Painter, blurred
from .c2st import C2STProtocol, C2STResult, Validity, c2st, validity
from .colour import ColourScores, colour_scores
from .copying import BlockIndex, CopyScores, copy_scores
from .picture import label_rgb, picture_grid, save_png
from .scenes import RenderSettings, layout_from_labels, local_grid, render
from .seams import TOKEN_PERIOD, SeamScores, scene_set_seams
from .texture import TextureScores, texture_scores

U8 = NDArray[np.uint8]
ImageInput: TypeAlias = str | Path | NDArray[Any]
"""An RGB image: an ``(H, W, >=3)`` uint8 array or a GeoTIFF / image file path."""
LabelInput: TypeAlias = str | Path | NDArray[Any] | Layout
"""Class ids: an ``(H, W)`` integer array, a label GeoTIFF (band 1) or a Layout."""
Candidate: TypeAlias = Generator | Painter | ImageInput | Sequence[ImageInput]

REAL = "real vs real"
FLAT = "flat paint"
BLURRED = "blurred real (sigma 4)"
REPORT = "report.json"
PICTURE = "picture.png"


@dataclass(frozen=True)
class Scene:
    """One real image with its class ids on the same pixels (and its grid, if it has one)."""

    name: str
    real: U8
    labels: NDArray[np.uint8]
    grid: GeoBox | None = None
    layout: Layout | None = None


@dataclass(frozen=True)
class Scores:
    """Every measure of one row of the report (a candidate, a control, or real itself)."""

    name: str
    kind: str  # "generator", "painter", "images", "control" or "real"
    c2st: C2STResult | None
    colour: ColourScores
    texture: TextureScores
    seams: SeamScores  # mean over scenes
    seams_per_scene: tuple[SeamScores, ...]
    fidelity: dict[str, Any] | None = None
    copying: CopyScores | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "c2st": self.c2st.to_dict() if self.c2st else None,
            "colour": self.colour.to_dict(),
            "texture": self.texture.to_dict(),
            "seams": self.seams.to_dict(),
            "seams_per_scene": [s.to_dict() for s in self.seams_per_scene],
            "fidelity": self.fidelity,
            "copying": self.copying.to_dict() if self.copying else None,
        }


@dataclass(frozen=True)
class EvaluationReport:
    """The result of :func:`evaluate`: rows by name (candidates first, then the controls and
    ``real vs real``), the classifier's validity, and the files written."""

    scenes: tuple[str, ...]
    rows: dict[str, Scores]
    validity: Validity
    protocol: C2STProtocol
    render: RenderSettings
    token_period: int
    files: dict[str, Path] = field(default_factory=dict)
    fidelity: dict[str, Any] | None = None
    """Segmenter used, real mIoU, and the fidelity ratio (generated / real) of every row next
    to the flat painter's; None when no segmenter ran."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "fidelity": self.fidelity,
            "scenes": list(self.scenes),
            "valid": self.validity.valid,
            "validity": self.validity.to_dict(),
            "protocol": asdict(self.protocol),
            "render": asdict(self.render),
            "token_period": self.token_period,
            "rows": {k: v.to_dict() for k, v in self.rows.items()},
            "files": {k: str(v) for k, v in self.files.items()},
        }

    def table(self) -> str:
        """A plain-text table of the headline figures, one line per row."""
        head = (
            f"{'':26s} {'C2ST acc':>13s} {'dE (Lab)':>8s} {'sat/real':>8s} "
            f"{'texture':>7s} {'sharp':>5s} {'tile':>5s} {'chance':>6s} {'pooled':>11s} "
            f"{'tok max':>7s} {'tok mean':>8s} {'fidelity':>8s} {'copy':>5s}"
        )
        lines = [head]
        for r in self.rows.values():
            acc = f"{r.c2st.mean:.3f}+-{r.c2st.std:.3f}" if r.c2st else "-"
            fid = r.fidelity.get("ratio") if r.fidelity else None
            lines.append(
                f"{r.name[:26]:26s} {acc:>13s} {r.colour.mean_delta_e:8.2f} "
                f"{r.colour.saturation_ratio:8.2f} {r.texture.mean_distance:7.4f} "
                f"{r.texture.mean_sharpness:5.2f} {r.seams.tile_worst:5.2f} "
                f"{r.seams.tile_chance:6.2f} {_pooled(r.seams):>11s} "
                f"{r.seams.token_worst:7.2f} {r.seams.token_mean:8.2f} "
                f"{'-' if fid is None else f'{fid:.2f}':>8s} "
                f"{f'{r.copying.median_rmse:.1f}' if r.copying else '-':>5s}"
            )
        state = "valid" if self.validity.valid else "NOT valid: " + "; ".join(self.validity.reasons)
        lines.append(f"classifier test {state}")
        if self.fidelity is not None:
            flat = self.fidelity.get("flat_ratio")
            lines.append(
                f"fidelity = segmenter mIoU generated / real (real mIoU "
                f"{self.fidelity['real_miou']:.3f}); flat paint scores "
                f"{'-' if flat is None else f'{flat:.2f}'}"
            )
        return "\n".join(lines)


def _read_raster(path: Path, what: str) -> tuple[NDArray[Any], GeoBox | None]:
    """All bands ``(H, W, bands)`` and the grid (None for a file without a CRS)."""
    import rasterio
    from rasterio.errors import RasterioIOError

    if not path.is_file():
        raise InputError(f"{what} '{path}' not found")
    try:
        with rasterio.open(path) as src:
            data = src.read().transpose(1, 2, 0)
            grid = None
            if src.crs is not None:
                from odc.geo import CRS

                grid = GeoBox((src.height, src.width), src.transform, CRS(src.crs.to_wkt()))
    except RasterioIOError as exc:
        raise InputError(f"{what} '{path}' is not a raster GDAL can read: {exc}") from exc
    return data, grid


def _image(value: ImageInput, what: str) -> tuple[U8, GeoBox | None]:
    if isinstance(value, str | Path):
        data, grid = _read_raster(Path(value), what)
    else:
        data, grid = np.asarray(value), None
    if data.ndim != 3 or data.shape[2] < 3:
        raise InputError(f"{what} must have at least 3 bands (RGB), got shape {data.shape}")
    if data.dtype != np.uint8:
        raise InputError(f"{what} is {data.dtype}; convert it to 8-bit RGB (uint8) first")
    return np.ascontiguousarray(data[..., :3]), grid


def _labels(value: LabelInput, what: str) -> tuple[NDArray[np.uint8], GeoBox | None, Layout | None]:
    if isinstance(value, Layout):
        from ..raster import rasterize_layout

        return np.asarray(rasterize_layout(value)["label"].values, np.uint8), value.grid, value
    if isinstance(value, str | Path):
        data, grid = _read_raster(Path(value), what)
        data = data[..., 0]
    else:
        data, grid = np.asarray(value), None
    if data.ndim != 2 or not np.issubdtype(data.dtype, np.integer):
        raise InputError(
            f"{what} must be a 2-D raster of integer class ids, got {data.dtype} {data.shape}"
        )
    if data.size and (data.min() < 0 or data.max() > 255):
        raise InputError(f"{what} has class ids outside 0..255")
    return data.astype(np.uint8), grid, None


def _check_same(
    a_shape: tuple[int, ...],
    a_grid: GeoBox | None,
    b_shape: tuple[int, ...],
    b_grid: GeoBox | None,
    what: str,
) -> None:
    from ..grid import same_grid

    if tuple(a_shape[:2]) != tuple(b_shape[:2]):
        raise GridError(
            f"{what}: {b_shape[1]}x{b_shape[0]} px, but the real image is "
            f"{a_shape[1]}x{a_shape[0]} px; every input must be on the real image's "
            "grid"
        )
    if a_grid is not None and b_grid is not None and not same_grid(a_grid, b_grid):
        raise GridError(
            f"{what} is not on the real image's grid ({b_grid.crs} vs "
            f"{a_grid.crs}, or a shifted transform); resample it onto that grid"
        )


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str | Path | np.ndarray | Layout):
        return [value]
    return list(value)


def load_scenes(
    real: ImageInput | Sequence[ImageInput],
    labels: LabelInput | Sequence[LabelInput],
    names: Sequence[str] | None = None,
) -> list[Scene]:
    """Read and check the real scenes: one label raster per real image, on its grid."""
    reals, labs = _as_list(real), _as_list(labels)
    if not reals or len(reals) != len(labs):
        raise InputError(f"{len(reals)} real images but {len(labs)} label rasters; give one each")
    if names is not None and len(names) != len(reals):
        raise InputError(f"{len(names)} scene names for {len(reals)} scenes")
    scenes: list[Scene] = []
    for i, (r, lab) in enumerate(zip(reals, labs, strict=True)):
        name = names[i] if names else (Path(r).stem if isinstance(r, str | Path) else f"scene {i}")
        img, grid = _image(r, f"real image of {name}")
        cls, lgrid, layout = _labels(lab, f"labels of {name}")
        _check_same(img.shape, grid, cls.shape, lgrid, f"labels of {name}")
        scenes.append(Scene(name, img, cls, grid or lgrid, layout))
    return scenes


def _is_generator(value: object) -> bool:
    return all(hasattr(value, a) for a in ("generate", "tile_multiple", "describe"))


def _candidate_images(
    name: str,
    value: Candidate,
    scenes: Sequence[Scene],
    taxonomy: Taxonomy | None,
    work: Path | None,
    settings: RenderSettings,
) -> tuple[str, list[U8]]:
    """(kind, images) of one candidate, checked against the scenes' grids."""
    if _is_generator(value):
        if work is None:
            raise InputError(f"candidate '{name}' is a generator: give an out folder to render in")
        layouts = [s.layout or _scene_layout(s, taxonomy) for s in scenes]
        images = render(value, layouts, work / "render" / _slug(name), settings)  # type: ignore[arg-type]
        return "generator", [im[..., :3] for im in images]
    if callable(value):
        return "painter", [np.asarray(value(s.labels), np.uint8) for s in scenes]
    items = _as_list(value)
    if len(items) != len(scenes):
        raise InputError(f"candidate '{name}' has {len(items)} images for {len(scenes)} scenes")
    images = []
    for s, item in zip(scenes, items, strict=True):
        img, grid = _image(item, f"image of '{name}' for {s.name}")
        _check_same(s.real.shape, s.grid, img.shape, grid, f"image of '{name}' for {s.name}")
        images.append(img)
    return "images", images


def _scene_layout(scene: Scene, taxonomy: Taxonomy | None) -> Layout:
    if taxonomy is None:
        raise LayoutError(
            f"to render {scene.name} from its label raster, pass the taxonomy "
            "of its class ids (taxonomy=...) or give the labels as a Layout"
        )
    return layout_from_labels(scene.labels, taxonomy, scene.grid or local_grid(scene.labels.shape))


def _check_classifier_size(scenes: Sequence[Scene], p: C2STProtocol) -> None:
    side = 2 * p.block * p.downsample
    small = [s.name for s in scenes if min(s.labels.shape) < side]
    if small:
        raise InputError(
            f"scenes {', '.join(small)} are smaller than {side} px a side, too small for the "
            "classifier test (two blocks of its spatial split); use larger scenes or "
            "classifier=False"
        )


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_") or "candidate"


def _scores(
    name: str,
    kind: str,
    images: Sequence[U8],
    scenes: Sequence[Scene],
    protocol: C2STProtocol,
    settings: RenderSettings,
    token_period: int,
    judge: _Fidelity | None,
    classifier: bool,
    copy_index: BlockIndex | None = None,
) -> Scores:
    real = [s.real for s in scenes]
    labels = [s.labels for s in scenes]
    seams, per_scene = scene_set_seams(images, settings.tile_size, settings.overlap, token_period)
    return Scores(
        name=name,
        kind=kind,
        c2st=c2st(real, list(images), protocol) if classifier else None,
        colour=colour_scores(images, real, labels),
        texture=texture_scores(images, real, labels),
        seams=seams,
        seams_per_scene=per_scene,
        fidelity=judge.score(images, labels) if judge is not None else None,
        copying=copy_scores(images, copy_index) if copy_index is not None else None,
    )


def _pooled(seams: SeamScores) -> str:
    """'worst / chance' of the tiling lines pooled over scenes, or '-'."""
    if seams.tile_pooled is None or seams.tile_pooled_chance is None:
        return "-"
    return f"{seams.tile_pooled:.2f}/{seams.tile_pooled_chance:.2f}"


@dataclass(frozen=True)
class _Fidelity:
    """The segmenter with the real scenes' scores, computed once for every row."""

    model: Any
    weights: Path
    real: dict[str, Any]

    @classmethod
    def of(cls, weights: Path, scenes: Sequence[Scene]) -> _Fidelity:
        from ..train.segmenter import iou_scores
        from .segmenter import load, segment

        model = load(weights)
        preds = [segment(s.real, model) for s in scenes]
        real = iou_scores(preds, [s.labels for s in scenes])
        return cls(model, weights, {k: v for k, v in real.items() if k != "pixels"})

    def score(self, images: Sequence[U8], labels: Sequence[NDArray[np.uint8]]) -> dict[str, Any]:
        from ..train.segmenter import fidelity_ratio, iou_scores
        from .segmenter import segment

        gen = iou_scores([segment(im, self.model) for im in images], list(labels))
        rep = fidelity_ratio(float(gen["miou"]), float(self.real["miou"]))  # type: ignore[arg-type]
        rep["generated"] = {k: v for k, v in gen.items() if k != "pixels"}
        rep["real"] = self.real
        return rep


def _resolve_segmenter(segmenter: str | Path | bool | None, tax: Taxonomy | None) -> Path | None:
    """An explicit weights path; False: none; None: the shipped one for Dubai-class labels."""
    from .segmenter import DEFAULT_WEIGHTS, applies_to

    if segmenter is False:
        return None
    if segmenter is None or segmenter is True:
        if segmenter is True or (tax is not None and applies_to(tax)):
            if not DEFAULT_WEIGHTS.is_file():
                raise InputError(f"shipped segmenter weights '{DEFAULT_WEIGHTS}' are missing")
            return DEFAULT_WEIGHTS
        return None
    seg = Path(segmenter)
    if not seg.is_file():
        raise InputError(f"segmenter weights '{seg}' not found")
    return seg


def evaluate(
    candidates: Mapping[str, Candidate],
    real: ImageInput | Sequence[ImageInput],
    labels: LabelInput | Sequence[LabelInput],
    *,
    out: str | Path | None = None,
    names: Sequence[str] | None = None,
    taxonomy: str | Path | Taxonomy | None = None,
    render_settings: RenderSettings | None = None,
    protocol: C2STProtocol | None = None,
    token_period: int = TOKEN_PERIOD,
    classifier: bool = True,
    controls: bool = True,
    flat_painter: Painter | None = None,
    segmenter: str | Path | bool | None = None,
    copy_reference: Sequence[ImageInput] | None = None,
    picture_rows: int = 4,
    picture_crop: int = 512,
    picture_panel: int = 256,
    progress: Progress | None = None,
) -> EvaluationReport:
    """Score every candidate against the real scenes (see the module docstring).

    ``real`` and ``labels``: one scene or a list of them, each label raster on its real
    image's grid (GeoTIFFs are checked by CRS and transform, arrays by shape; a mismatch is a
    GridError). A candidate is a generator (rendered with ``render_settings``, the generate
    job's tiling, into ``out/render``; needs ``out`` and, for label rasters, the
    ``taxonomy``), a painter ``labels -> RGB``, or one image per scene. ``render_settings``
    also sets the tiling whose lines the seam score checks. ``classifier=False`` skips the
    classifier test (scenes under 512 px a side are too small for it). ``controls`` adds the
    flat-paint (``flat_painter``, default: the real scenes' own class means), blurred-real and
    real-vs-real rows that decide the classifier's validity; without them the report is
    marked not valid. ``segmenter``: weights of a segmenter with the Dubai classes for the
    fidelity column; None (default) uses the shipped one when ``taxonomy`` is
    ``dubai_aerial``, True always, False never. The report's ``fidelity`` puts each row's
    ratio (generated / real) next to the flat painter's. ``copy_reference``: the imagery the
    candidates drew from (training tiles, an exemplar bank's crops) for the copying column
    (:mod:`.copying`): each row's median RMSE of its 32-px blocks to their nearest reference
    block, real's as the yardstick.
    """
    progress = progress or NullProgress()
    protocol = protocol or C2STProtocol()
    settings = render_settings or RenderSettings()
    tax = load_taxonomy(taxonomy) if isinstance(taxonomy, str | Path) else taxonomy
    reserved = {REAL, FLAT, BLURRED} & set(candidates) if controls else set()
    if reserved:
        raise InputError(f"candidate names {sorted(reserved)} are reserved for the controls")
    seg = _resolve_segmenter(segmenter, tax)
    scenes = load_scenes(real, labels, names)
    copy_index = None
    if copy_reference is not None:
        copy_index = BlockIndex([_image(v, "copy reference")[0] for v in copy_reference])
    if classifier:
        _check_classifier_size(scenes, protocol)
    folder = ensure_writable_dir(out) if out is not None else None
    images: dict[str, tuple[str, list[U8]]] = {}
    for name, value in candidates.items():  # every input checked before the long work
        progress.message(f"preparing candidate {name}")
        images[name] = _candidate_images(name, value, scenes, tax, folder, settings)
    if controls:
        painter = flat_painter or FlatPainter.from_pairs(
            [s.real for s in scenes], [s.labels for s in scenes]
        )
        images[FLAT] = ("control", [np.asarray(painter(s.labels), np.uint8) for s in scenes])
        images[BLURRED] = ("control", [blurred(s.real, 4.0) for s in scenes])
        images[REAL] = ("real", [s.real for s in scenes])
    rows: dict[str, Scores] = {}
    progress.stage("scoring", len(images))
    judge = _Fidelity.of(seg, scenes) if seg is not None else None
    for name, (kind, imgs) in images.items():
        progress.message(f"scoring {name}")
        rows[name] = _scores(
            name,
            kind,
            imgs,
            scenes,
            protocol,
            settings,
            token_period,
            judge,
            classifier,
            copy_index,
        )
        progress.advance()
    fid = _fidelity_summary(judge, rows)
    valid = validity(
        rows[FLAT].c2st if FLAT in rows else None,
        rows[BLURRED].c2st if BLURRED in rows else None,
        rows[REAL].c2st if REAL in rows else None,
        protocol,
    )
    report = EvaluationReport(
        tuple(s.name for s in scenes), rows, valid, protocol, settings, token_period, {}, fid
    )
    if folder is None:
        return report
    colours = tax.colours_by_id() if tax is not None else {}
    columns: dict[str, Sequence[NDArray[np.generic]]] = {"real": [s.real for s in scenes]}
    columns.update({k: v[1] for k, v in images.items() if k != REAL})
    sheet = picture_grid(
        [label_rgb(s.labels, colours) for s in scenes],
        columns,
        crop=picture_crop,
        panel=picture_panel,
        max_rows=picture_rows,
    )
    files = {"picture": save_png(sheet, folder / PICTURE), "report": folder / REPORT}
    report = EvaluationReport(
        report.scenes, rows, valid, protocol, settings, token_period, files, fid
    )
    with atomic_output(folder / REPORT) as tmp:
        tmp.write_text(json.dumps(_finite(report.to_dict()), indent=1), encoding="utf-8")
    return report


def _fidelity_summary(judge: _Fidelity | None, rows: Mapping[str, Scores]) -> dict[str, Any] | None:
    """Each row's fidelity ratio next to the flat painter's (the no-texture baseline)."""
    if judge is None:
        return None
    ratios = {k: r.fidelity["ratio"] for k, r in rows.items() if r.fidelity is not None}
    flat = ratios.get(FLAT)
    return {
        "segmenter": str(judge.weights),
        "real_miou": judge.real["miou"],
        "real_per_class": judge.real["per_class"],
        "ratio": ratios,
        "flat_ratio": flat,
        "ratio_over_flat": {
            k: (v / flat if flat else math.nan) for k, v in ratios.items() if k != FLAT
        },
    }


def _finite(value: Any) -> Any:
    """NaN/inf as null: report.json stays strict JSON for every reader."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


__all__ = [
    "BLURRED",
    "FLAT",
    "REAL",
    "Candidate",
    "EvaluationReport",
    "ImageInput",
    "LabelInput",
    "Scene",
    "Scores",
    "evaluate",
    "load_scenes",
]
