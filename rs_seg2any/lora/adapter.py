"""LoRA adapters on disk and on a model: peft's safetensors layout, a card, strict checks.

An adapter folder holds

    adapter_model.safetensors   peft's layout (``base_model.model.<module>.lora_A.weight``)
    adapter_config.json         peft's LoraConfig (rank, alpha, target modules)
    adapter_card.json           what it was trained for: backend, base weights, bands,
                                taxonomy and classes, footprint, CRS, GSD, steps, metrics,
                                the data licence the user declared
    README.md                   the same card for people
    band_adapter.safetensors    (multispectral only) the band in/out projections

Adapter files are untrusted input: only safetensors are read (no pickle, so nothing executes),
the JSON files are parsed as data and only known keys are used, and every tensor is checked
(float, finite, bounded, 2-d, a LoRA pair of an existing layer with matching shapes) before
the model is touched. Several adapters combine: each is injected under its own name and all
are active at once, each scaled by its weight (peft sums their contributions).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_output, write_json, write_text
from ..errors import AdapterMismatchError, WeightsError
from ..generators.integrity import check_tensors, read_tensors

ADAPTER_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
CARD_FILE = "adapter_card.json"
BANDS_FILE = "band_adapter.safetensors"
PEFT_PREFIX = "base_model.model."
TINY_TARGETS = r"((ctx_)?blocks\.\d+\.(attn\.(qkv|out)|mlp\.[02])|head|refiner\.(inp|out|text))"
"""Linear layers of the embedded model a LoRA adapts: attention and MLPs of both streams,
the output head and the refiner's projections."""
MAX_JSON = 1 << 20
MAX_LORA_ABS = 1e3
HOME_ENV = "RS_SEG2ANY_ADAPTERS"


@dataclass(frozen=True)
class LoraRef:
    """``PATH[:WEIGHT]`` (or the name of an installed adapter) from ``--lora``."""

    path: Path
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str | LoraRef) -> LoraRef:
        if isinstance(text, LoraRef):
            return text
        head, sep, tail = str(text).rpartition(":")
        if sep and head and not Path(text).exists():
            try:
                weight = float(tail)
            except ValueError:
                weight = None
            if weight is not None:
                if not -10.0 <= weight <= 10.0:
                    raise AdapterMismatchError(f"--lora {text}: weight must be in [-10, 10]")
                return cls(resolve_path(head), weight)
        return cls(resolve_path(str(text)))


@dataclass
class Adapter:
    """A validated adapter folder: tensors (peft keys), rank/alpha/targets, its card."""

    folder: Path
    state: dict[str, torch.Tensor]
    rank: int
    alpha: float
    targets: str | list[str]
    card: dict[str, Any]
    bands: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.card.get("name") or self.folder.name)

    @property
    def backend(self) -> str:
        return str(self.card.get("backend", ""))


def adapter_homes() -> list[Path]:
    """Where installed adapters live: ``$RS_SEG2ANY_ADAPTERS`` (path list), else
    ``~/.local/share/rs_seg2any/adapters``."""
    env = os.environ.get(HOME_ENV)
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path.home() / ".local" / "share" / "rs_seg2any" / "adapters"]


def resolve_path(text: str) -> Path:
    """A path as given, else the installed adapter of that name."""
    p = Path(text).expanduser()
    if p.exists():
        return p
    for home in adapter_homes():
        if (home / text / CARD_FILE).is_file():
            return home / text
    return p


def list_adapters(homes: Sequence[Path] | None = None) -> list[dict[str, Any]]:
    """Installed adapters (folders with a card) and what they were trained for."""
    found: list[dict[str, Any]] = []
    for home in homes or adapter_homes():
        if not home.is_dir():
            continue
        for folder in sorted(p for p in home.iterdir() if (p / CARD_FILE).is_file()):
            try:
                card = _read_json(folder / CARD_FILE)
            except WeightsError as exc:
                found.append({"name": folder.name, "path": str(folder), "error": str(exc)})
                continue
            found.append(
                {
                    "name": folder.name,
                    "path": str(folder),
                    "backend": card.get("backend"),
                    "bands": [b.get("name") for b in card.get("bands", []) if isinstance(b, dict)],
                    "taxonomy": card.get("taxonomy"),
                    "classes": card.get("classes"),
                    "gsd_m": card.get("gsd_m"),
                    "steps": card.get("steps"),
                    "licence": card.get("licence"),
                }
            )
    return found


# --- writing ----------------------------------------------------------------------------


def lora_config(rank: int, alpha: float, targets: str | list[str] = TINY_TARGETS) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0)  # type: ignore[arg-type]


def inject(model: nn.Module, config: Any, name: str) -> nn.Module:
    """``model`` with LoRA layers named ``name`` (B = 0: the output is unchanged)."""
    from peft import inject_adapter_in_model

    return inject_adapter_in_model(config, model, adapter_name=name)


def lora_state(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """The adapter's tensors with peft's saved keys."""
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(model, adapter_name=name)
    return {PEFT_PREFIX + k: v.detach().float().contiguous().clone() for k, v in state.items()}


def _config_json(config: Any) -> dict[str, Any]:
    raw = config.to_dict()
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, set):
            v = sorted(v)
        if hasattr(v, "value"):
            v = v.value
        try:
            json.dumps(v)
        except TypeError:
            v = str(v)
        out[k] = v
    return out


def save_adapter(
    folder: Path,
    state: dict[str, torch.Tensor],
    config: Any,
    card: dict[str, Any],
    bands: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write an adapter folder (every file through the atomic writer)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(folder / ADAPTER_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    if bands:
        with atomic_output(folder / BANDS_FILE) as tmp:
            save_file({k: v.detach().float().contiguous() for k, v in bands.items()}, str(tmp))
    write_json(folder / CONFIG_FILE, _config_json(config))
    write_json(folder / CARD_FILE, card)
    write_text(folder / "README.md", card_markdown(card))
    return folder


def card_markdown(card: dict[str, Any]) -> str:
    """The card for people: what the adapter is for and how it scored."""
    bands = ", ".join(f"{b['name']} (source band {b['source_band']})" for b in card["bands"])
    classes = ", ".join(f"{k} {v}" for k, v in card["classes"].items())
    lines = [
        f"# LoRA adapter `{card['name']}` for the `{card['backend']}` backend",
        "",
        f"- Base weights: `{card['base']['weights']}` (sha256 {card['base']['sha256'][:16]}...)",
        f"- Rank {card['rank']}, alpha {card['alpha']}, {card['steps']} steps "
        f"(best validation at step {card['best_step']})",
        f"- Bands: {bands}"
        + (" — band adapter in/out projections" if card["band_adapter"] else ""),
        f"- Taxonomy `{card['taxonomy']}`, classes: {classes}",
        f"- Ground sampling distance: {card['gsd_m']:.3g} m",
        f"- Data licence (as declared by the user): {card['licence']}",
        "",
        "## Training data footprint",
        "",
        "| image | CRS | size (px) | bounds | valid |",
        "|---|---|---|---|---|",
    ]
    for s in card["footprint"]:
        b = ", ".join(f"{v:.6g}" for v in s["bounds"])
        lines.append(
            f"| {Path(s['path']).name} | {s['crs']} | {s['shape'][1]} x {s['shape'][0]}"
            f" | {b} | {s['valid_share']:.1%} |"
        )
    lines += ["", "## Metrics (validation area)", ""]
    for k, v in card["metrics"].items():
        lines.append(f"- {k}: {v if not isinstance(v, float) else round(v, 5)}")
    return "\n".join(lines) + "\n"


# --- reading (untrusted) -----------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise WeightsError(f"adapter file missing: {path}")
    if path.stat().st_size > MAX_JSON:
        raise WeightsError(f"{path} is larger than {MAX_JSON} bytes; not an adapter file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path} is not valid JSON ({exc}); the adapter is corrupt") from exc
    if not isinstance(data, dict):
        raise WeightsError(f"{path} is not a JSON object; the adapter is corrupt")
    return data


_LORA_KEY = re.compile(r"^base_model\.model\.([\w.]+)\.lora_([AB])\.weight$")


def read_adapter(folder: Path | str) -> Adapter:
    """An adapter folder, validated as data (no code runs); any defect is a WeightsError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AdapterMismatchError(
            f"LoRA adapter '{folder}' not found (a folder with {ADAPTER_FILE}, or the name of an "
            f"installed adapter: see `rs-seg2any adapters`)"
        )
    cfg = _read_json(folder / CONFIG_FILE)
    card = _read_json(folder / CARD_FILE)
    rank, alpha, targets = cfg.get("r"), cfg.get("lora_alpha"), cfg.get("target_modules")
    if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= 4096:
        raise WeightsError(f"{folder / CONFIG_FILE}: 'r' must be a positive integer")
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not 0 < alpha < 1e5:
        raise WeightsError(f"{folder / CONFIG_FILE}: 'lora_alpha' must be a positive number")
    listed = isinstance(targets, list) and all(isinstance(t, str) for t in targets)
    if not (isinstance(targets, str) or listed):
        raise WeightsError(f"{folder / CONFIG_FILE}: 'target_modules' must be text or a list")
    state = read_tensors(folder / ADAPTER_FILE, "LoRA adapter")
    check_tensors(state, f"LoRA '{folder}'", max_abs=MAX_LORA_ABS)
    for key, value in state.items():
        m = _LORA_KEY.match(key)
        if m is None or value.ndim != 2:
            raise WeightsError(f"LoRA '{folder}': '{key}' is not a LoRA weight of peft's layout")
        if (value.shape[0] if m.group(2) == "A" else value.shape[1]) != rank:
            raise WeightsError(f"LoRA '{folder}': '{key}' does not have rank {rank}")
    if not state:
        raise WeightsError(f"LoRA '{folder}' holds no LoRA weights")
    bands: dict[str, torch.Tensor] = {}
    if (folder / BANDS_FILE).is_file():
        bands = read_tensors(folder / BANDS_FILE, "band adapter")
        check_tensors(bands, f"band adapter of '{folder}'", max_abs=MAX_LORA_ABS)
    target_spec: str | list[str] = targets if isinstance(targets, str) else list(targets or [])
    return Adapter(folder, state, int(rank), float(alpha), target_spec, card, bands)


def check_fits(model: nn.Module, adapter: Adapter) -> None:
    """Every LoRA pair targets an existing Linear with matching in/out features."""
    modules = dict(model.named_modules())
    problems: list[str] = []
    for key, value in adapter.state.items():
        m = _LORA_KEY.match(key)
        assert m is not None
        name, kind = m.group(1), m.group(2)
        mod = modules.get(name)
        base = getattr(mod, "base_layer", mod)
        if not isinstance(base, nn.Linear):
            problems.append(f"{name} (no such linear layer)")
        elif kind == "A" and value.shape[1] != base.in_features:
            problems.append(f"{name} (in {value.shape[1]} != {base.in_features})")
        elif kind == "B" and value.shape[0] != base.out_features:
            problems.append(f"{name} (out {value.shape[0]} != {base.out_features})")
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise AdapterMismatchError(
            f"LoRA '{adapter.folder}' does not fit this model: {'; '.join(problems[:3])}{more}"
            " — it was trained for other base weights"
        )


def check_compatible(
    adapter: Adapter, *, backend: str, base_sha256: str | None = None, n_bands: int | None = None
) -> None:
    """Refuse an adapter trained for another backend, base model or band set."""
    if adapter.backend != backend:
        raise AdapterMismatchError(
            f"LoRA '{adapter.folder}' was trained for the {adapter.backend or 'unknown'} backend, "
            f"not {backend}; use --backend {adapter.backend} or an adapter trained for {backend}"
        )
    base = adapter.card.get("base", {})
    sha = base.get("sha256") if isinstance(base, dict) else None
    if base_sha256 is not None and sha is not None and sha != base_sha256:
        raise AdapterMismatchError(
            f"LoRA '{adapter.folder}' was trained on base weights {str(sha)[:12]}..., not the "
            f"loaded {base_sha256[:12]}...; use the same --model it was trained on"
        )
    if n_bands is not None and len(adapter.card.get("bands", [])) != n_bands:
        raise AdapterMismatchError(
            f"LoRA '{adapter.folder}' was trained for {band_text(adapter.card)}; this run renders "
            f"{n_bands} bands"
        )


def band_text(card: dict[str, Any]) -> str:
    bands = card.get("bands", [])
    names = ", ".join(str(b.get("name")) for b in bands if isinstance(b, dict))
    return f"{len(bands)} bands ({names})"


def check_band_sets(adapters: Sequence[Adapter]) -> None:
    """Combined adapters must agree on their bands."""
    sets = {json.dumps([b.get("name") for b in a.card.get("bands", [])]) for a in adapters}
    if len(sets) > 1:
        raise AdapterMismatchError(
            "LoRA adapters trained for different band sets cannot be combined: "
            + "; ".join(f"{a.folder.name}: {band_text(a.card)}" for a in adapters)
        )


def check_classes(adapters: Sequence[Adapter], taxonomy: str, classes: Sequence[int]) -> None:
    """Refuse a layout whose taxonomy or classes an adapter was not trained for."""
    for a in adapters:
        tax = a.card.get("taxonomy")
        known = {int(k) for k in a.card.get("classes", {})}
        if tax is not None and tax != taxonomy:
            raise AdapterMismatchError(
                f"LoRA '{a.folder}' was trained for taxonomy '{tax}', the layout uses "
                f"'{taxonomy}'; rasterise with --taxonomy {tax}"
            )
        extra = sorted(set(int(c) for c in classes) - known - {0})
        if extra:
            raise AdapterMismatchError(
                f"LoRA '{a.folder}' was trained for classes {sorted(known)} of '{tax}'; the "
                f"layout also has {extra}, which it never saw"
            )


def apply_adapters(model: nn.Module, adapters: Sequence[tuple[Adapter, float]]) -> nn.Module:
    """Inject every adapter (fits checked first) and activate all of them with their weights."""
    from peft.tuners.lora import LoraLayer
    from peft.utils import set_peft_model_state_dict

    for adapter, _w in adapters:
        check_fits(model, adapter)
    names = []
    for i, (adapter, _w) in enumerate(adapters):
        name = f"lora{i}"
        with warnings.catch_warnings():  # a second adapter on one model is the point here
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            model = inject(model, lora_config(adapter.rank, adapter.alpha, adapter.targets), name)
        state = {k.removeprefix(PEFT_PREFIX): v for k, v in adapter.state.items()}
        result: Any = set_peft_model_state_dict(model, state, adapter_name=name)
        missing = [k for k in result.missing_keys if f".{name}." in k and "lora_" in k]
        unexpected = list(result.unexpected_keys)
        if missing or unexpected:
            raise AdapterMismatchError(
                f"LoRA '{adapter.folder}' does not cover the layers its config targets "
                f"({len(missing)} missing, {len(unexpected)} unexpected tensors)"
            )
        names.append(name)
    for module in model.modules():
        if isinstance(module, LoraLayer):
            present = [n for n in names if n in module.lora_A]
            module.set_adapter(present)
            for n, (_a, w) in zip(names, adapters, strict=True):
                module.set_scale(n, w)
    model.requires_grad_(False)
    return model
