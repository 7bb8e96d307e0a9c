"""The front door: ``import rs_seg2any as rs``, registries open to plug-ins, typed job files.

A toy backend and a toy scenario are installed the way a third-party package would do it (a
``.dist-info`` folder declaring entry points, on ``sys.path``), without touching this package,
and run from the API, the CLI and a job file.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

PACKAGE = Path(__file__).resolve().parents[1] / "rs_seg2any"
CLI_MODULES = {
    "rs_seg2any.cli",
    "rs_seg2any.cli.schema",
    "rs_seg2any.cli.__main__",
    "rs_seg2any.train.__main__",
}

TOY_MODULE = '''
"""A third-party plug-in: a flat-colour backend and a 'paint' scenario."""
from dataclasses import dataclass, field

import numpy as np

from rs_seg2any.generators.registry import BackendSpec
from rs_seg2any.params import meta
from rs_seg2any.scenarios.spec import ScenarioSpec


class Flat:
    name = "toy"
    bands = 3
    supports_inpainting = True
    tile_multiple = 16

    def __init__(self, level):
        self.level = level

    def describe(self):
        return {"backend": "toy", "level": self.level}

    def generate(self, cond, *, steps, guidance, gamma, seed):
        out = np.full((*cond.instances.shape, 3), self.level, np.uint8)
        out[..., 1] = (cond.instances * 40 % 256).astype(np.uint8)
        return out


def backend():
    return BackendSpec("toy", lambda model, threads=None: Flat(int(model or 77)),
                       help="flat colour", steps=1, guidance=0.0)


@dataclass(frozen=True)
class PaintParams:
    value: int = field(default=9, metadata=meta("the value to paint"))


def _paint(inputs, params):
    import rasterio
    from rasterio.transform import from_origin

    inputs.out.mkdir(parents=True, exist_ok=True)
    path = inputs.out / "paint.tif"
    grid = inputs.grid
    with rasterio.open(path, "w", driver="GTiff", width=grid.width, height=grid.height,
                       count=1, dtype="uint8", crs=grid.crs.to_wkt(),
                       transform=grid.transform) as dst:
        dst.write(np.full((1, grid.height, grid.width), params.value, np.uint8))
    gen = inputs.generator()
    (inputs.out / "backend.txt").write_text(gen.describe()["backend"])
    return {"paint": path}


SCENARIO = ScenarioSpec("paint", PaintParams, _paint, help="paint a constant",
                        layout="required")
'''

ENTRY_POINTS = """[rs_seg2any.backends]
toy = toy_plugin:backend

[rs_seg2any.scenarios]
paint = toy_plugin:SCENARIO
"""


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    """A folder holding an installed-looking third-party distribution with entry points."""
    site = tmp_path / "site"
    dist = site / "toy_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    (site / "toy_plugin.py").write_text(TOY_MODULE)
    return site


@pytest.fixture
def demo_layer(tmp_path: Path) -> Path:
    from rs_seg2any.demo import write_demo_layer

    return Path(write_demo_layer(tmp_path / "town.gpkg"))


TOWN = ["--class-field", "landcover", "--taxonomy", "dubai_aerial"]


def _cli(args: list[str], plugin: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = dict(os.environ)
    paths = [str(PACKAGE.parent), *([str(plugin)] if plugin else [])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return subprocess.run(
        [sys.executable, "-m", "rs_seg2any.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_plugin_backend_and_scenario_from_api_cli_and_job_file(
    plugin_path: Path, demo_layer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --- the CLI lists and runs them
    listed = _cli(["backends"], plugin_path)
    assert listed.returncode == 0, listed.stderr
    assert "toy" in {b["name"] for b in json.loads(listed.stdout)}
    out_cli = tmp_path / "cli"
    done = _cli(
        [
            "paint",
            "--layout",
            demo_layer,
            *TOWN,
            "--resolution",
            4,
            "--value",
            5,
            "--backend",
            "toy",
            "--out",
            out_cli,
            "--progress",
            "none",
        ],
        plugin_path,
    )
    assert done.returncode == 0, done.stderr
    with rasterio.open(out_cli / "paint.tif") as src:
        assert (src.read(1) == 5).all()
    assert (out_cli / "backend.txt").read_text() == "toy"
    gen = _cli(
        [
            "generate",
            demo_layer,
            *TOWN,
            "--resolution",
            4,
            "--backend",
            "toy",
            "--model",
            33,
            "--tile-size",
            64,
            "--overlap",
            16,
            "--out",
            tmp_path / "g",
            "--progress",
            "none",
        ],
        plugin_path,
    )
    assert gen.returncode == 0, gen.stderr
    with rasterio.open(tmp_path / "g" / "image.tif") as src:
        assert (src.read(1) == 33).all()

    # --- a job file
    job = tmp_path / "job.yaml"
    job.write_text(
        f"scenario: paint\nlayout: {demo_layer}\nclass_field: landcover\n"
        f"taxonomy: dubai_aerial\nresolution: 4\nvalue: 7\nbackend: toy\nout: {tmp_path / 'j'}\n"
    )
    ran = _cli(["run", job], plugin_path)
    assert ran.returncode == 0, ran.stderr
    with rasterio.open(tmp_path / "j" / "paint.tif") as src:
        assert (src.read(1) == 7).all()

    # --- the API, in this process
    monkeypatch.syspath_prepend(str(plugin_path))
    import importlib

    import rs_seg2any as rs
    from rs_seg2any.generators import registry as backend_registry
    from rs_seg2any.scenarios import registry as scenario_registry

    importlib.invalidate_caches()
    monkeypatch.setattr(backend_registry, "BACKENDS", backend_registry.BACKENDS.fresh())
    monkeypatch.setattr(scenario_registry, "SCENARIOS", scenario_registry.SCENARIOS.fresh())
    assert "paint" in {s["name"] for s in rs.list_scenarios()}
    layout = rs.load_layout(demo_layer, "landcover", taxonomy="dubai_aerial", resolution=4)
    res = rs.scenario("paint", tmp_path / "api", layout=layout, value=11, backend="toy")
    assert res.open("paint").values.max() == 11
    assert (tmp_path / "api" / "backend.txt").read_text() == "toy"


def test_api_generate_returns_outputs_on_the_job_grid(
    demo_layer: Path, tmp_path: Path, tiny_random_weights: Path
) -> None:
    import rs_seg2any as rs

    layout = rs.load_layout(demo_layer, "landcover", taxonomy="dubai_aerial", resolution=4)
    res = rs.generate(
        layout,
        tmp_path / "out",
        model=str(tiny_random_weights),
        steps=1,
        tile_size=64,
        overlap=16,
        seed=2,
        progress="none",
    )
    ds = res.to_xarray()
    assert {"image", "label", "instance", "contour"} <= set(ds.data_vars)
    assert ds["image"].shape == (3, layout.grid.height, layout.grid.width)
    assert ds.odc.geobox == layout.grid
    with rasterio.open(res.outputs["label"]) as src:
        np.testing.assert_array_equal(ds["label"].values[0], src.read(1))
    with pytest.raises(TypeError, match="tile_sise"):
        rs.generate(layout, tmp_path / "x", tile_sise=64)


def test_api_scenario_takes_a_loaded_layout(
    demo_layer: Path, tmp_path: Path, tiny_random_weights: Path
) -> None:
    import rs_seg2any as rs

    layout = rs.load_layout(
        demo_layer,
        "landcover",
        taxonomy="dubai_aerial",
        resolution=4,
        description_field="description",
    )
    res = rs.seasons(
        tmp_path / "s",
        layout=layout,
        seasons="summer,winter",
        model=str(tiny_random_weights),
        steps=1,
        tile_size=64,
        overlap=16,
    )
    summer, winter = (res.open(f"{s}_image").values for s in ("summer", "winter"))
    assert summer.shape == winter.shape == (3, layout.grid.height, layout.grid.width)
    assert not np.array_equal(summer, winter)


JOB_ERRORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "unknown key": ("command: generate\nseeed: 3\n", ("unknown key 'seeed'", "keys are:")),
    "wrong type": ("command: generate\nseed: abc\nout: o\n", ("key 'seed'", "number")),
    "missing file": (
        "command: generate\nlayout: nowhere.gpkg\nout: o\n",
        ("key 'layout'", "nowhere.gpkg", "not found"),
    ),
    "missing input of a scenario": (
        "scenario: cloudfill\nimage: none.tif\nclouds: c.tif\nout: o\n",
        ("key 'image'", "none.tif", "not found"),
    ),
}


@pytest.mark.parametrize("case", list(JOB_ERRORS))
def test_job_file_errors_name_key_and_file(case: str, tmp_path: Path) -> None:
    import rs_seg2any as rs

    text, fragments = JOB_ERRORS[case]
    job = tmp_path / "job.yaml"
    job.write_text(text)
    with pytest.raises(rs.InputError) as info:
        rs.run(job)
    message = str(info.value)
    assert "\n" not in message and str(job) in message
    for fragment in fragments:
        assert fragment in message
    done = _cli(["run", job])
    assert done.returncode == rs.InputError.exit_code
    assert done.stderr.strip().splitlines() == [f"error: {message}"]


def test_import_stays_torch_free_and_exports_the_verbs() -> None:
    code = textwrap.dedent(
        """
        import sys
        import rs_seg2any as rs
        verbs = ["load_layout", "rasterize", "generate", "flood", "plan", "seasons", "change",
                 "cloudfill", "load_generator", "list_backends", "list_scenarios", "run"]
        assert all(callable(getattr(rs, v)) for v in verbs)
        assert issubclass(rs.LayoutError, rs.RsSeg2AnyError)
        names = [s["name"] for s in rs.list_scenarios()] + [b["name"] for b in rs.list_backends()]
        assert "torch" not in sys.modules, "torch imported"
        print(",".join(sorted(names)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.strip().split(",")) >= {
        "flood",
        "plan",
        "seasons",
        "change",
        "cloudfill",
        "tiny",
        "flux",
    }


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _imports(name: str, tree: ast.Module, is_package: bool, modules: set[str]) -> set[str]:
    """Modules of this package imported anywhere in ``tree`` (also inside functions)."""
    found: set[str] = set()
    base = name if is_package else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            root = base
            for _ in range(max(node.level - 1, 0)):
                root = root.rsplit(".", 1)[0]
            mod = (f"{root}.{node.module}" if node.module else root) if node.level else node.module
            targets = [f"{mod}.{a.name}" for a in node.names] + [str(mod)]
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name and t != "rs_seg2any":
                found.add(t)
    return found


def test_no_import_cycles_and_no_argparse_below_the_cli() -> None:
    trees = _modules()
    names = set(trees)
    packages = {
        n for n in names if (PACKAGE.parent / n.replace(".", "/") / "__init__.py").is_file()
    }
    graph = {n: _imports(n, t, n in packages, names) for n, t in trees.items()}
    # Tarjan-free cycle search: a module reaching itself
    cycles = []
    for start in graph:
        stack, seen = [start], set()
        while stack:
            node = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycles.append(start)
                    stack.clear()
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
    assert cycles == [], f"modules in import cycles: {sorted(cycles)}"

    # argparse only where a command line is parsed (the CLI and the training scripts' mains)
    argparse_users = {n for n, t in trees.items() if "argparse" in _plain_imports(t)}
    scripts = {n for n, t in trees.items() if "__main__" in ast.unparse(t)}
    assert argparse_users <= CLI_MODULES | scripts, argparse_users - CLI_MODULES - scripts


def _plain_imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_no_library_function_takes_an_argparse_namespace() -> None:
    offenders: list[str] = []
    for name, tree in _modules().items():
        if name in CLI_MODULES:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for arg in [*node.args.args, *node.args.kwonlyargs]:
                    if arg.annotation is not None and "Namespace" in ast.unparse(arg.annotation):
                        offenders.append(f"{name}.{node.name}")
    assert offenders == []


def test_cli_options_are_the_params_fields() -> None:
    """Every field of the shared params is an option of every job command, so a new field
    reaches the CLI, job files and the schema without another edit."""
    import dataclasses

    from rs_seg2any.cli import build_parser
    from rs_seg2any.jobmodel import command_groups

    parser = build_parser()
    sub = next(a for a in parser._actions if hasattr(a, "choices") and a.choices)
    for command in ("generate", "flood", "plan", "seasons", "change", "cloudfill"):
        dests = {a.dest for a in sub.choices[command]._actions}
        for cls in command_groups(command).values():
            fields: Any = dataclasses.fields(cls)
            missing = {f.name for f in fields} - dests
            assert not missing, (command, cls.__name__, missing)


def test_every_import_of_this_package_resolves() -> None:
    """Function-level imports run late: a module that moved must not leave one behind."""
    trees = _modules()
    names = set(trees)
    missing = []
    for name, tree in trees.items():
        is_package = (PACKAGE.parent / name.replace(".", "/") / "__init__.py").is_file()
        base = name if is_package else name.rsplit(".", 1)[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                root = base
                for _ in range(node.level - 1):
                    root = root.rsplit(".", 1)[0]
                mod = f"{root}.{node.module}" if node.module else root
                if mod not in names and not all(f"{mod}.{a.name}" in names for a in node.names):
                    missing.append(f"{name}: from {'.' * node.level}{node.module or ''}")
            elif (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("rs_seg2any")
                and node.module not in names
            ):
                missing.append(f"{name}: from {node.module}")
    assert missing == []
