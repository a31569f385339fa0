"""Serving metrics: one process, or many sharing ``PROMETHEUS_MULTIPROC_DIR``.

With several processes behind one port (``uvicorn --workers N``, a forking server),
prometheus-client must keep its values in files under ``PROMETHEUS_MULTIPROC_DIR``
(set before the process starts, emptied at deploy) and sum them when scraped. Without
it each process serves its own registry, as workers do on their ``METRICS_PORT``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.registry import Collector


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def registry() -> CollectorRegistry:
    """The registry to expose: this process's, or every process's under the shared dir."""
    path = multiprocess_dir()
    if not path:
        return REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined, path=path)
    return combined


def exposition(extra: Iterable[Collector] = ()) -> bytes:
    """The text format of the process metrics plus ``extra`` collectors (database gauges)."""
    out = generate_latest(registry())
    extra = list(extra)
    if extra:
        own = CollectorRegistry(auto_describe=False)
        for collector in extra:
            own.register(collector)
        out += generate_latest(own)
    return out
