"""The Prometheus side: prometheus_client instruments and the /metrics exposition.

With several worker processes (`frugal serve --workers N`) each worker writes its values to
memory-mapped files in PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode, set up
by `frugal serve`), and whichever worker answers a scrape sums every worker's files, so one
scrape sees the whole gateway. Without that variable the values live in this process."""

import os
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from gateway.telemetry.instruments import ALL, Spec

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    path = os.environ.get(MULTIPROC_ENV)
    return path if path and os.path.isdir(path) else None


class _Static:
    """A collector that yields metric families gathered just before the scrape."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


class PromSink:
    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir()
        if self.multiprocess and values.ValueClass is values.MutexValue:
            # prometheus_client chose its value class at import, before the variable was set.
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        owner = None if self.multiprocess else self.registry
        if self.multiprocess:
            MultiProcessCollector(self.registry, path=self.multiprocess)  # type: ignore[no-untyped-call]
        self._metrics: dict[str, Any] = {}
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}  # labels() is slow
        for spec in ALL:
            if spec.kind == "counter":
                metric: Any = Counter(spec.prom, spec.help, spec.labels, registry=owner)
            else:
                metric = Histogram(spec.prom, spec.help, spec.labels, registry=owner,
                                   buckets=spec.buckets)  # fmt: skip
            self._metrics[spec.prom] = metric

    def _child(self, spec: Spec, labels: Sequence[str]) -> Any:
        key = (spec.prom, tuple(labels))
        child = self._children.get(key)
        if child is None:  # label values come from bounded sets: this stays small
            child = self._children[key] = self._metrics[spec.prom].labels(*labels)
        return child

    def add(self, spec: Spec, value: float, labels: Sequence[str]) -> None:
        self._child(spec, labels).inc(value)

    def observe(self, spec: Spec, value: float, labels: Sequence[str]) -> None:
        self._child(spec, labels).observe(value)

    def render(self, extra: Iterable[Metric] = ()) -> bytes:
        """The text exposition: every worker's values, plus families gathered at scrape time."""
        out = generate_latest(self.registry)
        families = list(extra)
        if families:
            reg = CollectorRegistry(auto_describe=False)
            reg.register(_Static(families))
            out += generate_latest(reg)
        return out
