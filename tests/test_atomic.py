"""The one atomic writer: an interrupted write keeps the previous file and leaves no temp.

The interruptions are real: an exception or Ctrl-C raised by the writing code after part of
the new content is on disk, and a real file-size limit (RLIMIT_FSIZE) that makes the
operating system refuse the write half-way. A source scan keeps every other module on it.
"""

from __future__ import annotations

import ast
import csv
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rs_seg2any.atomic import atomic_open, atomic_output, atomic_write, write_json, write_text
from rs_seg2any.errors import OutputError

ROOT = Path(__file__).resolve().parents[1]
OLD = b"previous,content\n1,2\n"


def _half_via_path(dest: Path, exc: BaseException) -> None:
    with atomic_output(dest) as tmp:
        tmp.write_bytes(b"half of the new")
        raise exc


def _half_via_text_handle(dest: Path, exc: BaseException) -> None:
    with atomic_open(dest) as fh:
        out = csv.writer(fh)
        for i in range(10_000):  # more than one buffer: part of it is already in the file
            out.writerow([i, "row"])
            if i == 9_000:
                raise exc


def _half_via_binary_stream(dest: Path, exc: BaseException) -> None:
    def write(fh: object) -> None:
        fh.write(b"x" * 100_000)  # type: ignore[attr-defined]
        fh.flush()  # type: ignore[attr-defined]
        raise exc

    atomic_write(dest, write)


WRITERS = [_half_via_path, _half_via_text_handle, _half_via_binary_stream]


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("exc", [RuntimeError("crash"), KeyboardInterrupt()])
def test_interrupted_write_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, writer: Callable[[Path, BaseException], None], exc: BaseException
) -> None:
    dest = tmp_path / "table.csv"
    dest.write_bytes(OLD)
    with pytest.raises(type(exc)):
        writer(dest, exc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
    assert dest.read_bytes() == OLD


def test_interrupted_first_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        _half_via_text_handle(tmp_path / "new.csv", RuntimeError("crash"))
    assert list(tmp_path.iterdir()) == []


def test_finished_writes_replace_the_file(tmp_path: Path) -> None:
    dest = tmp_path / "report.json"
    dest.write_bytes(OLD)
    write_json(dest, {"b": 1, "a": [1, 2]})
    assert dest.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    write_text(dest, "plain")
    assert dest.read_text() == "plain"
    with atomic_open(tmp_path / "t.csv") as fh:
        csv.writer(fh).writerow(["a", "b"])
    assert (tmp_path / "t.csv").read_bytes() == b"a,b\r\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "t.csv"]


def test_nothing_written_is_an_error_not_an_empty_file(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="nothing was written"), atomic_output(tmp_path / "x"):
        pass
    assert list(tmp_path.iterdir()) == []


LIMITED_WRITE = """
import resource, signal, sys
from pathlib import Path
from rs_seg2any.atomic import write_json
from rs_seg2any.errors import OutputError

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
try:
    write_json(Path(sys.argv[1]), {"rows": list(range(100_000))})
except OutputError as exc:
    print(exc)
    sys.exit(exc.exit_code)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE")
def test_write_refused_by_the_os_half_way_keeps_the_old_file(tmp_path: Path) -> None:
    dest = tmp_path / "report.json"
    dest.write_bytes(OLD)
    run = subprocess.run(
        [sys.executable, "-c", LIMITED_WRITE, str(dest)],
        capture_output=True, text=True, timeout=120, check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == OutputError.exit_code, run.stderr
    assert "report.json grew larger than a file may be" in run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    assert dest.read_bytes() == OLD
    assert len(json.dumps({"rows": list(range(100_000))})) > 64 * 1024  # it did not fit


# Writes outside the atomic writer, and why they are fine: training loss logs grow line by
# line (read while training runs), the GeoTIFF writer streams into its own temp file and
# commits the category sidecar together with its raster, a zip member is written inside an
# atomic stream, and the tiny FLUX folders are test fixtures. Writes into a path named ``tmp``
# (what ``atomic_output`` yields) count as atomic.
ALLOWED = {
    ("atomic.py", "write_bytes"),  # the writable-folder probe
    ("atomic.py", "replace"),  # the rename itself
    ("geoio/cog.py", "open"),  # rasterio.open(self._partial, "w")
    ("geoio/cog.py", "replace"),  # os.replace(sidecar temp, sidecar), right after the COG
    ("job/jobdir.py", "open"),  # archive.open(member, "w") inside atomic_write
    ("quality/c2st.py", "save"),  # a JPEG re-encoded in memory (io.BytesIO), no file
    ("scenarios/masks.py", "open"),  # a scratch raster at a .tmp- path, deleted after use
    ("train/base.py", "open"),
    ("train/autoencoder.py", "open"),
    ("generators/flux/testing.py", "write_text"),
    ("train/exemplars.py", "save"),  # ExemplarBank.save, itself through the atomic writer
    ("detection/spool.py", "open"),  # JSON items spooled to a .tmp- scratch file, copied
    ("detection/vector.py", "to_file"),  # GeoPackage batches into a .tmp- scratch, copied
}


def _direct_writes(path: Path) -> list[tuple[str, int]]:
    """Calls that write or rename a file without the atomic writer."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and _writes(node):
            func = node.func
            found.append((func.attr if isinstance(func, ast.Attribute) else "open", node.lineno))
    return found


def _writes(node: ast.Call) -> bool:
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in ("replace", "rename"):
        # os.replace(a, b) and Path.replace(b): a home-made rename; not str.replace(a, b)
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        return owner == "os" or (len(node.args) == 1 and not node.keywords)
    targets = [*node.args, func.value] if isinstance(func, ast.Attribute) else node.args
    if any(isinstance(t, ast.Name) and t.id == "tmp" for t in targets):
        return False  # into atomic_output's temp path
    if isinstance(func, ast.Name):
        return func.id == "open" and _write_mode(node)
    if not isinstance(func, ast.Attribute):
        return False
    if func.attr == "open":
        return _write_mode(node)
    if func.attr in ("save", "to_file", "to_csv"):
        return bool(node.args)
    return func.attr in ("write_text", "write_bytes", "mkstemp")


def _write_mode(node: ast.Call) -> bool:
    modes = [*node.args, *(k.value for k in node.keywords if k.arg == "mode")]
    return any(
        isinstance(m, ast.Constant)
        and isinstance(m.value, str)
        and set(m.value) & set("wax+")
        and len(m.value) <= 3
        for m in modes
    )


def test_every_module_writes_through_the_atomic_writer() -> None:
    package = ROOT / "rs_seg2any"
    offenders = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        for name, line in _direct_writes(path):
            if (rel, name) not in ALLOWED:
                offenders.append(f"{rel}:{line} {name}")
    assert offenders == []


def test_the_scan_finds_a_direct_write(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        "import os\n"
        "def f(p, q):\n"
        "    p.write_text('x')\n"
        "    os.replace(p, q)\n"
        "    with p.open('w') as fh:\n"
        "        fh.write('x')\n"
        "    'a'.replace('a', 'b')\n"
        "    with open(p) as fh:\n"
        "        pass\n"
        "    image.save(p)\n"
        "    with atomic_output(p) as tmp:\n"
        "        image.save(tmp)\n"
        "    tmp.replace(q)\n"
    )
    found = _direct_writes(sample)
    assert sorted(found) == [
        ("open", 5), ("replace", 4), ("replace", 13), ("save", 10), ("write_text", 3)
    ]  # fmt: skip
