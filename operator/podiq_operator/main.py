"""Running the operator: in-process (``podiq operator``) or as ``python -m podiq_operator``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import kopf
import uvloop
from pydantic import ValidationError

from podiq.kubernetes.connecting import api_client
from podiq.kubernetes.resources import TaskRun
from podiq.kubernetes.storage import RedisStore
from podiq_operator.clusters import KubernetesClusterApi
from podiq_operator.config import OperatorConfig
from podiq_operator.eventing import EventPoster
from podiq_operator.handlers import Watches, build_informers, build_registry
from podiq_operator.informers import Informer
from podiq_operator.metrics import Metrics
from podiq_operator.pool_decisions import may_need_backstop
from podiq_operator.pools import PoolKeeper
from podiq_operator.reconciling import Reconciler
from podiq_operator.storage import NamespaceStorage

__all__ = ["cli", "operate", "run"]

logger = logging.getLogger(__name__)


async def operate(
    config: OperatorConfig,
    *,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set (or the process is signalled)."""
    metrics = Metrics()
    if config.metrics_port:
        metrics.serve(config.metrics_port, config.metrics_address)
    connection = await api_client()
    storage = NamespaceStorage(RedisStore(config.store), connection) if config.store.url else None
    keeper: PoolKeeper | None = None
    try:
        api = KubernetesClusterApi(connection, request_timeout=config.api.request_timeout)
        events = EventPoster(api)
        reconciler = Reconciler(api, config, metrics=metrics, events=events, storage=storage)
        watches = Watches(reconciler)
        # With peering, kopf must own every watch: pausing in favour of another replica stops only kopf's.
        standalone = config.peering is None
        registry = build_registry(reconciler, config, None if standalone else watches)
        secondaries = build_informers(connection, watches.secondaries(), config) if standalone else []
        taskruns = build_informers(connection, watches.taskruns(), config) if standalone else []
        keeper = pool_keeper(connection, storage, config, reconciler)
        sync = config.api.request_timeout
        # TaskRuns are listed once their Jobs, Pods and Events are: none is decided on while its Job is unknown.
        async with running(secondaries, sync_timeout=sync), running(taskruns, sync_timeout=sync):
            if keeper is not None:
                keeper.start()
            await kopf.operator(
                registry=registry,
                clusterwide=not config.namespaces,
                namespaces=list(config.namespaces),
                standalone=standalone,
                peering_name=config.peering,
                liveness_endpoint=config.liveness_endpoint,
                stop_flag=stop_flag,
                ready_flag=ready_flag,
            )
        await events.close()
    finally:
        if keeper is not None:
            await keeper.stop()
        if storage is not None:
            await storage.close()
        await connection.close()


def pool_keeper(
    connection: Any, storage: NamespaceStorage | None, config: OperatorConfig, reconciler: Reconciler
) -> PoolKeeper | None:
    """TaskPools need Redis: without it the operator keeps none (and pool runs wait, saying so in the client)."""
    if storage is None:
        return None
    cache = reconciler.cache

    def pool_runs(now: datetime) -> list[TaskRun]:
        # Told from the raw bodies first (the cache holds thousands), then parsed once per version.
        runs = []
        for key in [k for k, body in cache.taskruns.items() if may_need_backstop(body, now)]:
            with contextlib.suppress(ValidationError):  # malformed: the reconciler says so, and ignores it
                if (run := cache.taskrun(key)) is not None:
                    runs.append(run)
        return runs

    return PoolKeeper(
        connection,
        storage,
        config.jobs,
        config.namespaces,
        pool_runs,
        scaling=config.pool_scaling,
        excluded_namespaces=reconciler.policy.excluded_namespaces,
    )


@contextlib.asynccontextmanager
async def running(informers: Sequence[Informer], *, sync_timeout: float) -> AsyncIterator[None]:
    """Run the informers around the body, once their first lists are in (or ``sync_timeout``
    passed): the operator is ready only then."""
    tasks = [asyncio.create_task(informer.run(), name=repr(informer)) for informer in informers]
    try:
        try:
            async with asyncio.timeout(sync_timeout):
                await asyncio.gather(*(informer.synced.wait() for informer in informers))
        except TimeoutError:
            logger.warning("Not all of %s listed in %.0f s; starting anyway.", informers, sync_timeout)
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def run(
    namespaces: Sequence[str] | None = None, *, config: OperatorConfig | None = None, verbose: bool = False
) -> None:
    """Run the operator in this process until interrupted.

    ``namespaces``: the namespaces to serve; ``None`` or empty for all (cluster-wide).
    Other settings come from ``config``, by default from the ``PODIQ_*`` environment.
    """
    config = config or OperatorConfig.from_env()
    if namespaces:
        config = dataclasses.replace(config, namespaces=tuple(namespaces))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        # kopf logs every handler call at INFO: with thousands of runs that is most of the
        # output and a measurable share of the CPU. Errors still show.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # With asyncio's own loop, the loop and its TLS took about a fifth of a busy operator's
    # time; uvloop's are in C (kopf supports it).
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(operate(config))


def cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="podiq operator", description="Run the podiq operator.")
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        default=None,
        help="serve only this namespace (repeatable); default: PODIQ_WATCH_NAMESPACES, else all",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    run(args.namespaces, verbose=args.verbose)
