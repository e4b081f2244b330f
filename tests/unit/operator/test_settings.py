"""The operator's settings, what it registers with kopf, and what the watches of TaskRuns, Jobs, Pods and Events do."""

from __future__ import annotations

import kopf
import pytest

from podiq_operator.config import NamespaceConfig, OperatorConfig
from podiq_operator.handlers import (
    FAILED_CREATE_EVENTS,
    NoDiffBase,
    NoProgress,
    Watches,
    apply_settings,
    build_registry,
)
from podiq_operator.reconciling import Reconciler

from .conftest import job_body, pod_body, taskrun_body


def test_defaults_from_an_empty_environment() -> None:
    config = OperatorConfig.from_env({})
    assert config == OperatorConfig()
    assert config.namespaces == () and config.peering is None and config.events
    assert config.jobs.runtime_service_account == "podiq-runtime"


def test_environment() -> None:
    config = OperatorConfig.from_env(
        {
            "PODIQ_WATCH_NAMESPACES": "a, b,,",
            "PODIQ_RUNTIME_IMAGE": "rt:2",
            "PODIQ_METRICS_PORT": "0",
            "PODIQ_EVENTS": "false",
            "PODIQ_PEERING": "podiq",
            "PODIQ_LIVENESS": "",
            "PODIQ_MAX_WORKERS": "5",
            "PODIQ_DEADLINE_GRACE": "7",
            "PODIQ_IMAGE_PULL_POLICY": "Always",
        }
    )
    assert config.namespaces == ("a", "b")
    assert (config.jobs.runtime_image, config.jobs.deadline_grace_seconds, config.jobs.image_pull_policy) == (
        "rt:2",
        7,
        "Always",
    )
    assert config.metrics_port is None and config.liveness_endpoint is None
    assert not config.events and config.peering == "podiq" and config.api.max_workers == 5


def test_namespace_and_deadline_settings() -> None:
    default = OperatorConfig.from_env({})
    assert default.jobs.pending_deadline_seconds == 600
    assert default.namespace_setup.excluded == {"kube-system", "kube-public", "kube-node-lease"}
    assert not default.namespace_setup.provision and default.namespace_setup.scheduler_service_account is None
    config = OperatorConfig.from_env(
        {
            "PODIQ_PENDING_DEADLINE": "30",
            "PODIQ_EXCLUDED_NAMESPACES": "kube-system, secure",
            "PODIQ_PROVISION": "true",
            "PODIQ_RUNTIME_CLUSTER_ROLE": "rel-podiq-runtime",
            "PODIQ_SCHEDULER_SERVICE_ACCOUNT": "podiq-scheduler",
            "PODIQ_SCHEDULER_CLUSTER_ROLE": "rel-podiq-scheduler",
        }
    )
    setup = config.namespace_setup
    assert config.jobs.pending_deadline_seconds == 30 and setup.excluded == {"kube-system", "secure"}
    assert setup.provision and setup.runtime_cluster_role == "rel-podiq-runtime"
    assert (setup.scheduler_service_account, setup.scheduler_cluster_role) == ("podiq-scheduler", "rel-podiq-scheduler")
    assert OperatorConfig.from_env({"PODIQ_EXCLUDED_NAMESPACES": "-"}).namespace_setup.excluded == frozenset()


def test_kopf_settings() -> None:
    settings = kopf.OperatorSettings()
    apply_settings(settings, OperatorConfig())
    assert settings.peering.standalone is True
    assert settings.scanning.disabled is True
    assert (
        settings.queueing.worker_limit == 200 and settings.queueing.idle_timeout <= 1
    )  # writes are bounded by the reconciler
    # Event handlers keep nothing in the objects: kopf has no diff base to copy or progress to scrub.
    assert isinstance(settings.persistence.diffbase_storage, NoDiffBase)
    assert isinstance(settings.persistence.progress_storage, NoProgress)
    assert settings.watching.server_timeout == 300
    assert list(settings.watching.label_selectors.values()) == [
        "podiq.io/taskrun",
        "podiq.io/taskrun",
        "podiq.io/schedule-id",
    ]
    assert list(settings.watching.field_selectors.values()) == [FAILED_CREATE_EVENTS]


@pytest.mark.parametrize("provision", [False, True])
def test_schedules_cronjobs_are_read_only_where_namespaces_are_set_up(provision: bool) -> None:
    """A schedule may be the first podiq object in a namespace: with provisioning its CronJob
    sets the namespace up; without, the operator needs no access to CronJobs at all."""
    config = OperatorConfig(namespace_setup=NamespaceConfig(provision=provision))
    reconciler = Reconciler(api=None, config=config)  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused
    plurals = [source.plural for source, _ in Watches(reconciler).secondaries()]
    assert plurals == ["jobs", "pods", "events", *(["cronjobs"] if provision else [])]


async def test_a_cronjob_in_an_excluded_namespace_sets_nothing_up() -> None:
    config = OperatorConfig(namespace_setup=NamespaceConfig(provision=True))
    reconciler = Reconciler(api=None, config=config)  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused
    watches = Watches(reconciler)
    await watches.schedule("ADDED", {"metadata": {"name": "s", "namespace": "kube-system"}})
    await watches.schedule("DELETED", {"metadata": {"name": "s", "namespace": "jobs"}})
    assert not watches._setups  # nothing started: an excluded namespace, a deleted schedule


def test_kopf_settings_with_peering() -> None:
    settings = kopf.OperatorSettings()
    apply_settings(settings, OperatorConfig(peering="podiq", namespaces=("a",)))
    assert (settings.peering.standalone, settings.peering.name, settings.peering.clusterwide) == (False, "podiq", False)


@pytest.mark.parametrize("peering", [False, True])
async def test_only_event_handlers_so_kopf_writes_nothing_to_objects(peering: bool) -> None:
    """Change handlers persist progress annotations, timers/daemons add finalizers: none here.

    Standalone, kopf watches nothing (informers watch all four kinds); with peering, all four."""
    config = OperatorConfig(peering="podiq" if peering else None)
    reconciler = Reconciler(api=None, config=config)  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused
    registry = build_registry(reconciler, config, Watches(reconciler) if peering else None)
    watching = list(registry._watching.get_all_handlers())
    expected = ["events", "jobs", "pods", "taskruns"] if peering else []
    assert sorted(h.selector.any_name for h in watching) == expected  # type: ignore[union-attr]  # present here
    if peering:  # kopf's TaskRun handler is the informer's: it caches the run and triggers it
        triggered: list[tuple[str, str]] = []
        reconciler.trigger = triggered.append  # type: ignore[method-assign]  # patched for this test
        (taskruns,) = [h for h in watching if h.selector.any_name == "taskruns"]  # type: ignore[union-attr]  # present here
        await taskruns.fn(event={"type": "ADDED", "object": taskrun_body()})  # type: ignore[misc]  # kopf's handler records take keywords
        assert triggered == [("jobs", "add-1")] and ("jobs", "add-1") in reconciler.cache.taskruns
    assert not list(registry._changing.get_all_handlers())
    assert not list(registry._spawning.get_all_handlers())
    assert not list(registry._webhooks.get_all_handlers())
    assert not list(registry._indexing.get_all_handlers())


async def test_secondary_objects_trigger_their_taskrun_only_when_they_tell_something_new() -> None:
    config = OperatorConfig()
    reconciler = Reconciler(api=None, config=config)  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused
    triggered: list[tuple[str, str]] = []
    reconciler.trigger = triggered.append  # type: ignore[method-assign]  # patched for this test
    watches = Watches(reconciler)
    reconciler.cache.put_taskrun(taskrun_body())
    job = job_body()
    await watches.job("ADDED", job)
    await watches.job("MODIFIED", {**job, "metadata": {**job["metadata"], "resourceVersion": "999"}})  # an echo
    await watches.pod("ADDED", pod_body())
    event = {
        "involvedObject": {"kind": "Job", "namespace": "jobs", "name": "add-1-a1"},
        "reason": "FailedCreate",
        "message": "quota",
    }
    await watches.failed_create("ADDED", event)
    await watches.failed_create("ADDED", {**event, "reason": "SuccessfulCreate"})
    await watches.job("DELETED", job)
    assert triggered == [("jobs", "add-1")] * 4  # the Job, its pod, the FailedCreate, the deletion
    assert reconciler.cache.failed_creates == {}  # forgotten with the Job


async def test_a_taskrun_event_caches_and_triggers_the_run_and_its_deletion_forgets_it() -> None:
    reconciler = Reconciler(api=None, config=OperatorConfig())  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused
    triggered: list[tuple[str, str]] = []
    reconciler.trigger = triggered.append  # type: ignore[method-assign]  # patched for this test
    watches = Watches(reconciler)
    body = taskrun_body()
    await watches.taskrun("ADDED", body)
    run = reconciler.cache.taskrun(("jobs", "add-1"))
    assert triggered == [("jobs", "add-1")] and run is not None and run.name == "add-1"
    await watches.taskrun("DELETED", {"metadata": body["metadata"]})  # as a re-list tells a deletion
    assert triggered == [("jobs", "add-1")] and reconciler.cache.taskrun(("jobs", "add-1")) is None
