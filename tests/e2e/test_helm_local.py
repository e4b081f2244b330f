"""`helm install charts/podiq` on the local control plane: the operator runs as a pod with
its service account, and tasks run through it."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
import yaml

from tests.e2e import scenario

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def installed(cluster: Any, podiq_crd: Any) -> Any:
    # Pods here are local processes on the host network, so the operator's endpoints stay on loopback.
    scenario.install(cluster, "operator.listenAddress=127.0.0.1", "metrics.port=18080", "health.port=18081")
    yield cluster
    scenario.uninstall(cluster)


def test_operator_runs_as_a_restricted_pod_with_its_own_service_account(installed: Any) -> None:
    pod = scenario.operator_pod(installed)
    assert pod["status"]["phase"] == "Running"
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "podiq-operator"
    assert spec["securityContext"]["runAsNonRoot"] is True
    container = spec["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] is True and container["capabilities"]["drop"] == ["ALL"]


def test_tasks_run_through_the_installed_operator(installed: Any) -> None:
    outcome = scenario.wait(scenario.run_tasks(str(installed.kubeconfig)))
    assert outcome["total"] == 6
    assert isinstance(outcome["error"], ValueError) and "Negative values not allowed" in str(outcome["error"])
    assert outcome["requeued"].startswith("Processed: retry_me")
    assert outcome["steps"] == 3
    runs = json.loads(installed.kubectl("get", "taskruns", "-n", scenario.TASK_NAMESPACE, "-o", "json").stdout)["items"]
    assert {r["status"]["phase"] for r in runs} == {"Succeeded", "Failed"}
    printed = installed.kubectl("get", "taskruns", "-n", scenario.TASK_NAMESPACE).stdout
    assert {"TASK", "PHASE", "PROGRESS", "ATTEMPTS", "DURATION", "AGE"} <= set(printed.split("\n")[0].split())


def test_operator_serves_prometheus_metrics(installed: Any) -> None:
    body = urllib.request.urlopen("http://127.0.0.1:18080/metrics", timeout=10).read().decode()
    assert "podiq_taskruns_in_flight" in body


def test_rendered_chart_passes_server_side_validation(cluster: Any, podiq_crd: Any) -> None:
    """The API server's own schema check of every object the chart renders, in each RBAC shape.

    Peering objects are left out: their CRDs come with the same render, and a dry run
    creates no CRD to check them against.
    """
    for sets in ([], ["--set", "watchNamespaces={a,b}"], ["--set", "peering.enabled=true"]):
        rendered = cluster.helm(
            "template", "check", str(scenario.CHART), "--namespace", "default", "--kube-version", "1.37.2", *sets
        ).stdout
        objects = [d for d in yaml.safe_load_all(rendered) if d and not d["kind"].endswith("KopfPeering")]
        assert len(objects) >= 8
        applied = cluster.kubectl(
            "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(objects), check=False
        )
        # Namespaces a and b do not exist; everything else must be accepted as it is.
        problems = [
            line
            for line in applied.stderr.splitlines()
            if 'namespaces "a" not found' not in line and 'namespaces "b" not found' not in line
        ]
        assert not problems, applied.stderr


def test_helm_lint_passes(cluster: Any) -> None:
    linted = cluster.helm("lint", str(scenario.CHART), "--strict", check=False)
    assert linted.returncode == 0, linted.stdout + linted.stderr


FRESH_NAMESPACE = "podiq-fresh"

#: Run in a pod as the runtime service account: writes the status of the TaskRuns named in argv.
WRITER = """
import json, os, ssl, sys, urllib.request, urllib.error
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(f"{sa}/token").read().strip()
context = ssl.create_default_context(cafile=f"{sa}/ca.crt")
base = f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"
for name in sys.argv[1:]:
    request = urllib.request.Request(
        f"{base}/apis/podiq.io/v1alpha1/namespaces/{os.environ['NS']}/taskruns/{name}/status", method="PATCH",
        data=json.dumps({"status": {"progressText": "1/2"}}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"})
    try:
        code, text = urllib.request.urlopen(request, context=context, timeout=10).status, ""
    except urllib.error.HTTPError as exc:
        code, text = exc.code, json.loads(exc.read()).get("message", "")
    print(json.dumps({"name": name, "code": code, "message": text}), flush=True)
"""


@pytest.fixture(scope="module")
def every_namespace(installed: Any) -> Any:
    """The release upgraded to the chart's default values: every namespace watched, none set up beforehand."""
    installed.helm(
        "upgrade",
        scenario.RELEASE,
        str(scenario.CHART),
        "--namespace",
        scenario.OPERATOR_NAMESPACE,
        "--set",
        "operator.listenAddress=127.0.0.1",
        "--set",
        "metrics.port=18080",
        "--set",
        "health.port=18081",
        "--wait",
        "--timeout",
        "180s",
        timeout=240,
    )
    installed.kubectl("create", "namespace", FRESH_NAMESPACE)
    installed.kubectl("label", "namespace", FRESH_NAMESPACE, *scenario.RESTRICTED)
    yield installed
    installed.kubectl("delete", "namespace", FRESH_NAMESPACE, "--wait=false", check=False)


def _taskrun(name: str, namespace: str, **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "podiq.io/v1alpha1",
            "kind": "TaskRun",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"taskName": "tests.integration.k8s_tasks:noop", **spec},
        }
    )


def test_with_default_values_a_task_runs_in_any_namespace(every_namespace: Any) -> None:
    cluster = every_namespace
    assert not cluster.get("serviceaccounts", "-n", FRESH_NAMESPACE, "-l", "app.kubernetes.io/managed-by=podiq")[
        "items"
    ]
    outcome = scenario.wait(_run_in(str(cluster.kubeconfig), FRESH_NAMESPACE))
    assert outcome == 6
    made = {
        (o["kind"], o["metadata"]["name"])
        for kind in ("serviceaccounts", "rolebindings")
        for o in cluster.get(kind, "-n", FRESH_NAMESPACE, "-l", "app.kubernetes.io/managed-by=podiq")["items"]
    }
    assert made == {
        ("ServiceAccount", "podiq-runtime"),
        ("RoleBinding", "podiq-runtime"),
        ("ServiceAccount", "podiq-scheduler"),
        ("RoleBinding", "podiq-scheduler"),
    }


SCHEDULE_NAMESPACE = "podiq-fresh-schedule"


def test_with_default_values_a_schedule_fires_in_a_fresh_namespace(every_namespace: Any) -> None:
    """A schedule is the first podiq object in its namespace: the operator sets the namespace up
    when the CronJob appears, so its firing pod has the scheduler's service account."""
    cluster = every_namespace
    cluster.kubectl("create", "namespace", SCHEDULE_NAMESPACE)
    cluster.kubectl("label", "namespace", SCHEDULE_NAMESPACE, *scenario.RESTRICTED)
    try:
        assert not cluster.get("serviceaccounts", "-n", SCHEDULE_NAMESPACE, "-l", "app.kubernetes.io/managed-by=podiq")[
            "items"
        ]
        outcome = scenario.wait(_schedule_in(cluster, SCHEDULE_NAMESPACE))
        assert not outcome.is_err and outcome.return_value == 6
        made = {
            o["metadata"]["name"]
            for o in cluster.get(
                "serviceaccounts", "-n", SCHEDULE_NAMESPACE, "-l", "app.kubernetes.io/managed-by=podiq"
            )["items"]
        }
        assert made == {"podiq-runtime", "podiq-scheduler"}
    finally:
        cluster.kubectl("delete", "namespace", SCHEDULE_NAMESPACE, "--wait=false", check=False)


async def _schedule_in(cluster: Any, namespace: str) -> Any:
    """Schedules calculate_sum every minute, waits for its first firing's result, unschedules."""
    import asyncio
    import time

    from podiq import AsyncTaskiqTask
    from podiq.kubernetes import KubernetesScheduleSource
    from tests.integration import k8s_tasks as t

    def fired() -> str | None:
        selector = "podiq.io/schedule-id=fresh"
        items = cluster.get("taskruns", "-n", namespace, "-l", selector)["items"]
        return items[0]["metadata"]["name"] if items else None

    t.broker.namespace, t.broker.kubeconfig = namespace, str(cluster.kubeconfig)
    async with t.broker, KubernetesScheduleSource(t.broker) as source:
        schedule = (
            await t.calculate_sum.kicker().with_schedule_id("fresh").schedule_by_cron(source, "* * * * *", [1, 2, 3])
        )
        try:
            deadline = time.monotonic() + 100  # the next minute boundary, and the firing pod's start
            while not (name := await asyncio.to_thread(fired)):
                assert time.monotonic() < deadline, "the schedule did not fire within 100 s"
                await asyncio.sleep(1)
            return await AsyncTaskiqTask(name, t.broker).wait_result(timeout=120)
        finally:
            await schedule.unschedule()


async def _run_in(kubeconfig: str, namespace: str) -> Any:
    from tests.integration import k8s_tasks as t

    t.broker.namespace, t.broker.kubeconfig = namespace, kubeconfig
    async with t.broker:
        return await (await t.calculate_sum.kiq([1, 2, 3])).wait_result(timeout=120)


def test_a_taskrun_in_an_excluded_namespace_is_refused_with_its_reason(every_namespace: Any) -> None:
    cluster = every_namespace
    cluster.apply(_taskrun("refused", "kube-system"))

    def refused() -> dict[str, Any] | None:
        status = cluster.get("taskrun", "refused", "-n", "kube-system").get("status", {})
        return status if status.get("phase") else None

    status = cluster.wait_for("the refusal", refused, timeout=30)
    assert status["phase"] == "Failed" and status["conditions"][0]["reason"] == "NamespaceExcluded"
    assert "excludedNamespaces" in status["conditions"][0]["message"]
    assert not cluster.get("jobs", "-n", "kube-system", "-l", "podiq.io/taskrun=refused")["items"]
    cluster.kubectl("delete", "taskrun", "refused", "-n", "kube-system")


def test_rbac_matrix_of_the_operator_runtime_and_scheduler(every_namespace: Any) -> None:
    cluster = every_namespace
    operator = f"system:serviceaccount:{scenario.OPERATOR_NAMESPACE}:podiq-operator"
    runtime = f"system:serviceaccount:{FRESH_NAMESPACE}:podiq-runtime"
    scheduler = f"system:serviceaccount:{FRESH_NAMESPACE}:podiq-scheduler"

    def can(who: str, verb: str, resource: str, *extra: str) -> bool:
        out = cluster.kubectl("auth", "can-i", verb, resource, "-n", FRESH_NAMESPACE, "--as", who, *extra, check=False)
        return out.stdout.strip() == "yes"

    allowed = [
        (operator, "create", "jobs.batch"),
        (operator, "patch", "taskruns.podiq.io", "--subresource=status"),
        (operator, "create", "serviceaccounts"),
        (operator, "create", "rolebindings"),
        (operator, "bind", "clusterroles/podiq-runtime"),
        (operator, "bind", "clusterroles/podiq-scheduler"),
        (operator, "create", "events"),
        (operator, "list", "pods"),
        (operator, "watch", "cronjobs.batch"),
        (runtime, "get", "taskruns.podiq.io"),
        (runtime, "patch", "taskruns.podiq.io", "--subresource=status"),
        (scheduler, "create", "taskruns.podiq.io"),
        (scheduler, "watch", "taskruns.podiq.io"),
    ]
    denied = [
        (operator, "bind", "clusterroles/cluster-admin"),
        (operator, "escalate", "clusterroles"),
        (operator, "get", "secrets"),
        (operator, "delete", "serviceaccounts"),
        (operator, "patch", "rolebindings"),
        (operator, "create", "serviceaccounts", "--subresource=token"),
        (operator, "create", "pods"),
        (operator, "create", "roles"),
        (operator, "create", "cronjobs.batch"),
        (operator, "delete", "cronjobs.batch"),
        (runtime, "create", "taskruns.podiq.io"),
        (runtime, "patch", "taskruns.podiq.io"),
        (runtime, "list", "taskruns.podiq.io"),
        (runtime, "get", "pods"),
        (runtime, "get", "secrets"),
        (runtime, "create", "jobs.batch"),
        (scheduler, "delete", "taskruns.podiq.io"),
        (scheduler, "patch", "taskruns.podiq.io", "--subresource=status"),
        (scheduler, "get", "secrets"),
        (scheduler, "create", "jobs.batch"),
    ]
    assert [a for a in allowed if not can(*a)] == []
    assert [d for d in denied if can(*d)] == []


@pytest.mark.parametrize("account", ["podiq-runtime", "custom-runner", "pool-worker"])
def test_a_runtime_pod_may_write_only_its_own_taskrun(every_namespace: Any, account: str) -> None:
    """With the default runtime service account, with a TaskRun's own ``serviceAccountName``
    (bound to the runtime ClusterRole by its owner), and as a worker of a pool: each pod may
    write only its own run (a worker: the runs of its own pool)."""
    cluster = every_namespace
    later = "2099-01-01T00:00:00Z"  # both runs wait: nothing but the pod below writes to them
    suffix = {"podiq-runtime": "", "custom-runner": "-custom", "pool-worker": "-pool"}[account]
    mine, victim = f"mine{suffix}", f"victim{suffix}"
    writer = f"{mine}-a1-x7k2q"
    extra: dict[str, Any] = {}
    if account == "pool-worker":  # a worker of pool `fast` and a run of pool `fast-lane`
        account, writer = "podiq-runtime", "podiq-pool-fast-5d9c7b8f4-x7k2q"
        cluster.apply(_taskrun(victim, FRESH_NAMESPACE, notBefore=later, pool="fast-lane"))
        extra["pool"] = "fast"
    if account != "podiq-runtime":
        cluster.kubectl("create", "serviceaccount", account, "-n", FRESH_NAMESPACE)
        cluster.kubectl(
            "create", "rolebinding", account, "-n", FRESH_NAMESPACE,
            "--clusterrole", "podiq-runtime", "--serviceaccount", f"{FRESH_NAMESPACE}:{account}",
        )  # fmt: skip
        extra["serviceAccountName"] = account
    for name in (mine, victim):
        if "pool" not in extra or name == mine:
            cluster.apply(_taskrun(name, FRESH_NAMESPACE, notBefore=later, **extra))
    restricted = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": writer, "namespace": FRESH_NAMESPACE},
        "spec": {
            "serviceAccountName": account,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "writer",
                    "image": "podiq-runtime:test",
                    "command": ["python", "-c", WRITER, victim, mine],
                    "env": [{"name": "NS", "value": FRESH_NAMESPACE}],
                    "securityContext": restricted,
                }
            ],
        },
    }
    cluster.apply(json.dumps(pod))
    cluster.wait_for(
        "the writer pod to finish",
        lambda: cluster.get("pod", writer, "-n", FRESH_NAMESPACE)["status"].get("phase") in ("Succeeded", "Failed"),
        timeout=60,
    )
    lines = cluster.kubectl("logs", writer, "-n", FRESH_NAMESPACE).stdout.splitlines()
    answers = {a["name"]: a for a in map(json.loads, lines)}
    assert answers[victim]["code"] == 403, answers
    assert f"pod {writer} is not a pod of TaskRun {victim}" in answers[victim]["message"]
    assert answers[mine]["code"] == 200, answers
    assert "progressText" not in cluster.get("taskrun", victim, "-n", FRESH_NAMESPACE).get("status", {})
    assert cluster.get("taskrun", mine, "-n", FRESH_NAMESPACE)["status"]["progressText"] == "1/2"
