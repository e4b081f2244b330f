"""Prometheus metrics of the operator, served on their own port.

A dedicated registry keeps them apart from any other collector in the process, and lets
tests create fresh metrics.
"""

from __future__ import annotations

import prometheus_client as prom

__all__ = ["Metrics"]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self, registry: prom.CollectorRegistry | None = None) -> None:
        self.registry = registry or prom.CollectorRegistry()
        self.attempts_started = prom.Counter(
            "podiq_attempts_started",
            "Attempts started (Jobs created), by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.taskruns_finished = prom.Counter(
            "podiq_taskruns_finished",
            "TaskRuns seen finishing, by phase.",
            ["phase"],
            registry=self.registry,
        )
        self.dispatch_latency = prom.Histogram(
            "podiq_dispatch_latency_seconds",
            "Seconds from a TaskRun's creation to its first Job's creation.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = prom.Gauge(
            "podiq_taskruns_in_flight",
            "TaskRuns started and not finished.",
            registry=self.registry,
        )
        self.reconcile_errors = prom.Counter(
            "podiq_reconcile_errors",
            "Reconciliations that failed and were retried.",
            registry=self.registry,
        )

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` on ``address:port`` from a daemon thread."""
        prom.start_http_server(port, addr=address, registry=self.registry)
