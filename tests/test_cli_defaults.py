"""Sampler defaults follow the backend unless the user gives them."""

from __future__ import annotations

from pathlib import Path

import pytest

from rs_seg2any.cli import build_parser, job_of
from rs_seg2any.generators.base import DEFAULT_GUIDANCE, DEFAULT_STEPS
from rs_seg2any.generators.registry import resolve_sampler


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], (DEFAULT_STEPS, DEFAULT_GUIDANCE)),
        (["--backend", "flux"], (28, 3.5)),
        (["--backend", "flux", "--steps", "12"], (12, 3.5)),
        (["--guidance", "2.5"], (DEFAULT_STEPS, 2.5)),
    ],
)
def test_steps_and_guidance_default_per_backend(
    extra: list[str], expected: tuple[int, float], tmp_path: Path
) -> None:
    layer = tmp_path / "x.gpkg"
    layer.touch()
    args = build_parser().parse_args(
        ["generate", str(layer), "--class-field", "c", "--out", "o", *extra]
    )
    assert resolve_sampler(job_of(args).sampler) == expected
