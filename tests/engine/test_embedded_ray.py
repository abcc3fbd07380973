"""The embedded local Ray runs Ray Data without its cluster services (curate.engine.embedded), and only there."""

from __future__ import annotations

import pytest

from curate.engine import embedded


def test_both_services_are_replaced_at_the_installed_ray_version():
    """When a Ray release moves what embedded.install() reaches into, this fails (the runs still work, slower)."""
    pytest.importorskip("ray.data")
    assert embedded.install() == ["autoscaling coordinator", "stats actor"]


def test_an_instance_this_process_did_not_start_is_left_as_it_ships(monkeypatch):
    monkeypatch.setattr(embedded, "_STARTED", set())
    assert not embedded.active()


def test_the_services_can_be_asked_for(monkeypatch):
    monkeypatch.setattr(embedded, "_STARTED", {"127.0.0.1:1"})
    monkeypatch.setenv(embedded.ENV, "1")
    assert not embedded.active()


@pytest.mark.ray
def test_a_run_on_the_embedded_instance_starts_neither_actor(ray_session, make_workdir, tmp_path):
    from helpers import parts, read_ids, write_pipeline

    from curate import config, engine

    assert embedded.active()
    make_workdir(docs=parts(2, 40))
    body = (
        "name: t\ninput: {format: parquet, path: in}\noutput: {path: %s}\nstages:\n  - {id: dedup, uses: exact_dedup}\n"
    )
    ids = {}
    for runner in ("ray", "local"):
        write_pipeline(tmp_path / f"{runner}.yaml", body % runner)
        stats = engine.run(config.load(str(tmp_path / f"{runner}.yaml"), ["engine.progress_seconds=0"]), runner=runner)
        assert stats["input_docs"] == 80
        ids[runner] = read_ids(tmp_path / runner)
    assert ids["ray"] == ids["local"] and 0 < len(ids["ray"]) < 80
    for name, namespace in (
        ("datasets_stats_actor", "_dataset_stats_actor"),
        ("AutoscalingCoordinator", "AutoscalingCoordinator"),
    ):
        with pytest.raises(ValueError):
            ray_session.get_actor(name, namespace=namespace)
