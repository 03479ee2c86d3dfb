"""The api's metrics summed over its worker processes, on the service's one ``/metrics``.

Spawned workers count in prometheus_client's multiprocess mode (each writes its values
to files in a directory named by ``PROMETHEUS_MULTIPROC_DIR``, set before they start);
the service process keeps counting in memory and, on a scrape, adds the workers' values
to its own, sample by sample, for the ``balans_api_*`` metrics (``metrics.py``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import structlog
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Sample

from balans_api import metrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "balans-api-metrics-"

log = structlog.get_logger("balans-api")


class SummedMetrics:
    """A collector of the api's metrics: this process's plus the workers' files."""

    def __init__(self, own: list[MetricWrapperBase], path: Path) -> None:
        self.own = own
        self.workers = MultiProcessCollector(None, path=str(path))

    def collect(self) -> Iterator[Metric]:
        names = {family.name for collector in self.own for family in collector.collect()}
        families: dict[str, Metric] = {}
        for family in [
            *(f for collector in self.own for f in collector.collect()),
            *(f for f in self.workers.collect() if f.name in names),
        ]:
            merged = families.setdefault(
                family.name, Metric(family.name, family.documentation, family.type)
            )
            merged.samples.extend(family.samples)
        for family in families.values():
            family.samples = _summed(family.samples)
            yield family


def _summed(samples: Iterable[Sample]) -> list[Sample]:
    """One sample per (name, labels), values added; ``_created`` times are dropped (the
    workers' files have none, and adding times means nothing)."""
    totals: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for sample in samples:
        if sample.name.endswith("_created"):
            continue
        key = (sample.name, tuple(sorted(sample.labels.items())))
        totals[key] = totals.get(key, 0.0) + sample.value
    return [Sample(name, dict(labels), value) for (name, labels), value in totals.items()]


def share_with_workers() -> Path:
    """Make workers started after this write their metrics to a fresh directory, and serve
    them summed with this process's; :func:`stop_sharing` removes the directory. The
    directory's name carries this process's id, so that the next start removes it if this
    process is killed before it can (:func:`remove_orphans`)."""
    parent = Path(tempfile.gettempdir())
    remove_orphans(parent)
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))
    os.environ[MULTIPROC_ENV] = str(path)
    own = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    for collector in own:
        REGISTRY.unregister(collector)
    REGISTRY.register(SummedMetrics(own, path))
    return path


def stop_sharing(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def remove_orphans(parent: Path) -> list[Path]:
    """Remove the metrics directories in ``parent`` whose api process no longer runs (it
    was killed before :func:`stop_sharing`); returns them."""
    removed = []
    for folder in parent.glob(f"{PREFIX}*"):
        pid = folder.name.removeprefix(PREFIX).split("-")[0]
        if not pid.isdigit() or _running(int(pid)):
            continue
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            log.warning("metrics_orphan_not_removed", folder=str(folder), error=str(exc))
            continue
        removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # running, as another user
        return True
    return True
