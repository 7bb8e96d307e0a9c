"""Local Dask workers start with a fixed mmap threshold, and the client's environment is
left as it was (Dask's trim threshold alone made 256-px tiny tiles 2x slower)."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("distributed")

from rs_seg2any.job.cluster import SPAWN_ENV, local_cluster


def _malloc_env() -> dict[str, str | None]:
    return {key: os.environ.get(key) for key in SPAWN_ENV}


def _on_a_local_worker() -> dict[str, dict[str, str | None]]:
    """The malloc variables each worker of a fresh 1-worker local cluster sees."""
    cluster, client = local_cluster(1, gpus=[])
    try:
        found: dict[str, dict[str, str | None]] = client.run(_malloc_env)
    finally:
        client.close()
        cluster.close()
    return found


def test_local_workers_get_the_malloc_settings_and_the_client_environment_is_unchanged() -> None:
    before = _malloc_env()
    on_workers = _on_a_local_worker()
    want = {key: str(value) for key, value in SPAWN_ENV.items()}
    assert on_workers and all(env == want for env in on_workers.values())
    assert _malloc_env() == before


def test_a_trim_threshold_left_by_an_earlier_dask_cluster_does_not_reach_our_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plain ``distributed.LocalCluster`` writes Dask's 64 kB trim threshold into this
    process's environment and never removes it, and a Nanny prefers the environment to its
    config: our workers must still get SPAWN_ENV, and the environment stays as it was."""
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    before = _malloc_env()
    on_workers = _on_a_local_worker()
    want = {key: str(value) for key, value in SPAWN_ENV.items()}
    assert on_workers and all(env == want for env in on_workers.values()), on_workers
    assert _malloc_env() == before
