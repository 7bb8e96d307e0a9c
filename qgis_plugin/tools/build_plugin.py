# SPDX-License-Identifier: GPL-2.0-or-later
"""Build the installable plugin zip (``make plugin``): dist/rs_seg2any_qgis-<version>.zip.

QGIS installs a zip whose single top folder is the plugin package. QGIS users have no pip,
so qgis-plugin-tools is bundled inside the package (``rs_seg2any_qgis/qgis_plugin_tools``),
where the plugin's ``_tools`` module finds it first. Run with a Python that has
qgis-plugin-tools installed (``.venv-qgis``). Members get a fixed timestamp, so the same
sources give the same zip.
"""

from __future__ import annotations

import argparse
import configparser
import importlib.util
import zipfile
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent / "rs_seg2any_qgis"
LICENSE = HERE.parent / "LICENSE"
FIXED_TIME = (2020, 1, 1, 0, 0, 0)
SKIP_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def files_under(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not SKIP_PARTS & set(path.parts) and path.suffix != ".pyc":
            yield path


def plugin_tools_dir() -> tuple[Path, Path | None]:
    """The installed qgis_plugin_tools package and its licence file."""
    spec = importlib.util.find_spec("qgis_plugin_tools")
    if spec is None or spec.origin is None:
        raise SystemExit("qgis-plugin-tools is not installed in this Python: use .venv-qgis")
    package = Path(spec.origin).parent
    licences = sorted(package.parent.glob("qgis_plugin_tools-*.dist-info/**/LICENSE*"))
    return package, licences[0] if licences else None


def add(archive: zipfile.ZipFile, source: Path, name: str) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, source.read_bytes())


def build(out_dir: Path) -> Path:
    meta = configparser.ConfigParser()
    meta.read(PACKAGE / "metadata.txt", encoding="utf-8")
    version = meta["general"]["version"]
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PACKAGE.name}-{version}.zip"
    tools, tools_licence = plugin_tools_dir()
    with zipfile.ZipFile(target, "w") as archive:
        for path in files_under(PACKAGE):
            add(archive, path, f"{PACKAGE.name}/{path.relative_to(PACKAGE).as_posix()}")
        add(archive, LICENSE, f"{PACKAGE.name}/LICENSE")
        for path in files_under(tools):
            add(archive, path, f"{PACKAGE.name}/qgis_plugin_tools/{path.relative_to(tools)}")
        if tools_licence is not None and not (tools / "LICENSE").is_file():
            add(archive, tools_licence, f"{PACKAGE.name}/qgis_plugin_tools/LICENSE")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dist"), help="output folder")
    print(build(parser.parse_args().out))


if __name__ == "__main__":
    main()
