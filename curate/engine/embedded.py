"""Ray Data on the embedded local Ray: without the two cluster services that have nothing to do there.

Each Ray Data execution starts two actors of its own, each in a worker process of its own:
- the autoscaling coordinator, which the executor asks for the resources it may use on every scheduling step, and
  which exists to ask an autoscaling cluster for more nodes. Until its process has started (2-4 s on a busy small
  machine) the executor sees no resources and holds back the map tasks;
- the stats actor, which gathers each operator's metrics for the Ray dashboard and its Prometheus export.

On the instance `ensure_ray` starts itself (one node of a fixed size, started without the dashboard) neither has
anything to do. On 2 cores the two took about 4.5 CPU-seconds of a 24-second FineWeb chain, and the map tasks
started 2 s late. There, the executor gets a fixed-size cluster instead: the node's own resources, known at once.
Metrics are not gathered, and a dataset's id is Ray's own fallback (a random uuid).
Everywhere else (a cluster, `ray start`, a Ray that curate did not start) Ray Data runs as it ships.

These are Ray Data's internals (its `ClusterAutoscaler` interface is a DeveloperAPI; the names it is reached by are
not): `install()` checks for each, and changes nothing where one is missing, so a Ray release that moves them runs
as before, only without the saving. tests/engine/test_embedded_ray.py fails when that happens, so that it is noticed.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

log = logging.getLogger("curate.engine")

# GCS addresses of the instances this process started with ensure_ray (so a later ray.init elsewhere is left alone)
_STARTED: set[str] = set()
_INSTALLED: list[str] = []
# CURATE_RAY_DATA_SERVICES=1 keeps Ray Data's own services on the embedded instance too.
ENV = "CURATE_RAY_DATA_SERVICES"


def started_here() -> None:
    """Record that this process started the instance it is now connected to."""
    import ray

    _STARTED.add(ray.get_runtime_context().gcs_address)
    install()  # what it installs defers to Ray's own code unless active()


def active() -> bool:
    """Connected to an instance this process started (and the services are not asked for)."""
    if not _STARTED or os.environ.get(ENV, "") == "1":
        return False
    import ray

    try:
        return ray.is_initialized() and ray.get_runtime_context().gcs_address in _STARTED
    except Exception:  # a shutting-down or half-connected Ray: as it ships
        return False


def install() -> list[str]:
    """Put the embedded instance's replacements in place (once per process); returns what was replaced."""
    if _INSTALLED:
        return list(_INSTALLED)
    try:
        from ray.data._internal.cluster_autoscaler.base_cluster_autoscaler import ClusterAutoscaler
        from ray.data._internal.execution import streaming_executor
        from ray.data._internal.execution.interfaces.execution_options import ExecutionResources
    except ImportError as e:
        log.debug("embedded Ray: Ray Data's autoscaler is not where it was (%s); left as it is", e)
    else:
        original = getattr(streaming_executor, "create_cluster_autoscaler", None)
        if callable(original):

            class FixedCluster(ClusterAutoscaler):
                """The resources of the one node, as the executor's total; nothing to scale."""

                def __init__(self) -> None:
                    import ray

                    self.total = ExecutionResources.from_resource_dict(ray.cluster_resources())

                def try_trigger_scaling(self) -> None:
                    return None

                def on_executor_shutdown(self) -> None:
                    return None

                def get_total_resources(self) -> Any:
                    return self.total

            def create_cluster_autoscaler(*args: Any, **kwargs: Any) -> Any:
                return FixedCluster() if active() else original(*args, **kwargs)

            streaming_executor.create_cluster_autoscaler = create_cluster_autoscaler
            _INSTALLED.append("autoscaling coordinator")
    try:
        from ray.data._internal.stats import _StatsManager
    except ImportError as e:
        log.debug("embedded Ray: Ray Data's stats manager is not where it was (%s); left as it is", e)
        return list(_INSTALLED)
    names = (
        "update_execution_metrics",
        "update_iteration_metrics",
        "register_dataset_to_stats_actor",
        "gen_dataset_id_from_stats_actor",
    )
    if all(callable(getattr(_StatsManager, n, None)) for n in names):
        for name in names:
            setattr(_StatsManager, name, staticmethod(_unless_active(name, getattr(_StatsManager, name))))
        _INSTALLED.append("stats actor")
    return list(_INSTALLED)


def _unless_active(name: str, original: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        if not active():
            return original(*args, **kwargs)
        return uuid.uuid4().hex if name == "gen_dataset_id_from_stats_actor" else None

    call.__name__ = name
    return call
