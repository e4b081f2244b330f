"""Jobs, CronJobs and Deployments run by the real controllers on the local
test cluster, with pods executed by the node agent as local processes.

The CronJob is created when this module starts and checked at its end, so the
wait for the next minute boundary overlaps the other tests.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CHARTS = Path(__file__).parent / "charts"


def _ns(cluster) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    return name


@pytest.fixture
def namespace(cluster):
    name = _ns(cluster)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def job(name: str, namespace: str, script: str, **spec) -> str:
    return json.dumps(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "backoffLimit": 0,
                **spec,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "main",
                                "image": "python:3.11-slim",
                                "command": ["python", "-c", script],
                                "env": [
                                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                    {
                                        "name": "POD_NAMESPACE",
                                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                                    },
                                ],
                            }
                        ],
                    }
                },
            },
        }
    )


def job_condition(cluster, name: str, namespace: str, kind: str) -> dict | None:
    conds = cluster.get("job", name, "-n", namespace).get("status", {}).get("conditions") or []
    return next((c for c in conds if c["type"] == kind and c["status"] == "True"), None)


def job_pods(cluster, name: str, namespace: str) -> list[dict]:
    return cluster.get("pods", "-n", namespace, "-l", f"job-name={name}")["items"]


@pytest.fixture(scope="module")
def cronjob(cluster):
    """A CronJob created at module start; its first run is checked by the last test."""
    namespace = _ns(cluster)
    cluster.apply(
        json.dumps(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": "tick", "namespace": namespace},
                "spec": {
                    "schedule": "* * * * *",
                    "concurrencyPolicy": "Forbid",
                    "jobTemplate": {"spec": json.loads(job("x", namespace, "print('tick')"))["spec"]},
                },
            }
        )
    )
    yield namespace, time.monotonic()
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(autouse=True, scope="module")
def _start_cronjob_early(cronjob):
    pass


def test_job_runs_python_one_liner_to_completion(cluster, namespace):
    script = (
        "import os, sys; print('hello from', os.environ['POD_NAME'], 'in', os.environ['POD_NAMESPACE']); "
        "print('interpreter', sys.executable)"
    )
    cluster.apply(job("hello", namespace, script))
    cluster.wait_for("Job Complete", lambda: job_condition(cluster, "hello", namespace, "Complete"), timeout=60)

    [pod] = job_pods(cluster, "hello", namespace)
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["nodeName"] == "podiq-node"  # bound by kube-scheduler
    assert pod["status"]["podIP"] == "127.0.0.1"
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert cluster.get("job", "hello", "-n", namespace)["status"]["succeeded"] == 1

    logs = cluster.kubectl("logs", "job/hello", "-n", namespace).stdout
    pod_name = pod["metadata"]["name"]
    assert f"hello from {pod_name} in {namespace}" in logs
    # `python` in a pod is the interpreter running the tests (PATH shim).
    assert f"interpreter {sys.executable}" in logs
    tail = cluster.kubectl("logs", pod_name, "-n", namespace, "--tail=1").stdout
    assert tail.startswith("interpreter ") and "hello from" not in tail


def test_failing_job_respects_backoff_limit(cluster, namespace):
    cluster.apply(job("fails", namespace, "import sys; print('about to fail'); sys.exit(3)", backoffLimit=1))
    cond = cluster.wait_for("Job Failed", lambda: job_condition(cluster, "fails", namespace, "Failed"), timeout=90)
    assert cond["reason"] == "BackoffLimitExceeded"
    status = cluster.get("job", "fails", "-n", namespace)["status"]
    assert status["failed"] == 2  # the first try plus backoffLimit=1 retry
    assert not status.get("succeeded")
    pods = job_pods(cluster, "fails", namespace)
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (term["exitCode"], term["reason"]) == (3, "Error")


def test_active_deadline_ends_job_and_kills_its_process(cluster, namespace):
    script = "import os, time; print('pid', os.getpid(), flush=True); time.sleep(600)"
    cluster.apply(job("slow", namespace, script, activeDeadlineSeconds=5))

    def pid():
        out = cluster.kubectl("logs", "job/slow", "-n", namespace, check=False).stdout
        m = re.search(r"pid (\d+)", out)
        return int(m.group(1)) if m else None

    process = cluster.wait_for("the job's process to start", pid, timeout=60)
    os.kill(process, 0)  # running now, as a local process

    cond = cluster.wait_for("Job Failed", lambda: job_condition(cluster, "slow", namespace, "Failed"), timeout=60)
    assert cond["reason"] == "DeadlineExceeded"

    def process_gone():
        try:
            os.kill(process, 0)
        except ProcessLookupError:
            return True
        return False

    cluster.wait_for("the job's process to be killed", process_gone, timeout=40)
    # The node finalized the deletion the Job controller asked for.
    cluster.wait_for("the job's pod to be deleted", lambda: job_pods(cluster, "slow", namespace) == [], timeout=40)


def test_helm_chart_pod_uses_in_cluster_config(cluster, namespace):
    release = "probe"
    cluster.helm("install", release, str(CHARTS / "probe"), "-n", namespace, "--wait", "--timeout", "90s")
    deployment = cluster.get("deployment", release, "-n", namespace)
    assert deployment["status"].get("readyReplicas") == 1

    def probe_line():
        out = cluster.kubectl("logs", f"deployment/{release}", "-n", namespace, check=False).stdout
        line = next((ln for ln in out.splitlines() if ln.startswith("PROBE ")), None)
        return json.loads(line[len("PROBE ") :]) if line else None

    result = cluster.wait_for("the probe's result in its log", probe_line, timeout=60)

    [pod] = cluster.get("pods", "-n", namespace, "-l", f"app={release}")["items"]
    assert result["namespace"] == namespace
    assert result["pod"] == pod["metadata"]["name"]
    assert result["greeting"] == "hello from the probe chart"
    # The token is the pod's own bound service-account token ...
    assert result["user"] == f"system:serviceaccount:{namespace}:{release}"
    # ... so the Role lets it read configmaps, and RBAC denies secrets.
    assert {"kube-root-ca.crt", f"{release}-data", f"{release}-script"} <= set(result["configmaps"])
    assert result["secrets"] == 403
    assert result["scratch"] is True
    can_i = cluster.kubectl(
        "auth",
        "can-i",
        "list",
        "secrets",
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:{release}",
        check=False,
    )
    assert can_i.stdout.strip() == "no"

    assert cluster.helm("list", "-n", namespace, "-q").stdout.split() == [release]
    cluster.helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "60s")
    cluster.wait_for(
        "the probe pod to go away", lambda: cluster.get("pods", "-n", namespace)["items"] == [], timeout=40
    )


def pod(name: str, namespace: str, script: str, **spec) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "restartPolicy": "Never",
                **spec,
                "containers": [
                    {
                        "name": "main",
                        "image": "python:3.11-slim",
                        "command": ["python", "-u", "-c", script],
                        "volumeMounts": [{"name": "work", "mountPath": "/podiq-test-work"}],
                    }
                ],
                "volumes": [{"name": "work", "emptyDir": {}}],
            },
        }
    )


def test_deleted_pod_gets_sigterm_then_sigkill_after_grace(cluster, namespace):
    script = (
        "import os, signal, time; signal.signal(signal.SIGTERM, lambda *a: print('got SIGTERM, ignoring', flush=True)); "
        "print('pid', os.getpid(), flush=True); time.sleep(600)"
    )
    cluster.apply(pod("stubborn", namespace, script, terminationGracePeriodSeconds=3))

    def pid():
        m = re.search(r"pid (\d+)", cluster.kubectl("logs", "stubborn", "-n", namespace, check=False).stdout)
        return int(m.group(1)) if m else None

    process = cluster.wait_for("the pod's process", pid, timeout=30)
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "stubborn", "-n", namespace, "--wait=false")
    cluster.wait_for(
        "SIGTERM to reach the process",
        lambda: "got SIGTERM" in cluster.kubectl("logs", "stubborn", "-n", namespace, check=False).stdout,
        timeout=10,
        interval=0.2,
    )
    os.kill(process, 0)  # still alive: it ignores SIGTERM

    def gone():
        try:
            os.kill(process, 0)
        except ProcessLookupError:
            return True
        return False

    cluster.wait_for("SIGKILL after the grace period", gone, timeout=20, interval=0.2)
    assert time.monotonic() - started >= 2.5  # not before the grace period
    cluster.wait_for(
        "the pod to be deleted",
        lambda: cluster.kubectl("get", "pod", "stubborn", "-n", namespace, check=False).returncode != 0,
        timeout=20,
    )


def test_on_failure_restarts_keep_empty_dir_and_previous_logs(cluster, namespace):
    # Fails on the first run, succeeds on the second: the emptyDir outlives a restart.
    script = (
        "import os, sys, time; marker = '/podiq-test-work/ran-before'; again = os.path.exists(marker); "
        "open(marker, 'w').close(); print('second run' if again else 'first run'); "
        "[print('line', i) or time.sleep(0.3) for i in range(10)] if again else None; sys.exit(0 if again else 7)"
    )
    cluster.apply(pod("flaky", namespace, script, restartPolicy="OnFailure"))
    cluster.wait_for(
        "the second run to start",
        lambda: "second run" in cluster.kubectl("logs", "flaky", "-n", namespace, check=False).stdout,
        timeout=30,
        interval=0.2,
    )
    # Follow streams the rest and ends by itself when the container exits.
    follow = cluster.kubectl("logs", "-f", "flaky", "-n", namespace, timeout=30).stdout
    assert "second run" in follow and "line 9" in follow

    status = cluster.wait_for(
        "the pod to succeed",
        lambda: (s := cluster.get("pod", "flaky", "-n", namespace)["status"])["phase"] == "Succeeded" and s,
        timeout=30,
    )
    [cs] = status["containerStatuses"]
    assert cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["exitCode"] == 7
    assert cs["state"]["terminated"]["exitCode"] == 0
    assert cluster.kubectl("logs", "flaky", "-n", namespace, "--previous").stdout.strip() == "first run"
    assert not Path("/podiq-test-work/ran-before").exists()  # the bind mount stayed in the pod


def test_cronjob_fires(cluster, cronjob):
    namespace, created = cronjob
    # `* * * * *` fires at the next minute boundary: at most 60s after creation.
    remaining = max(10.0, 100 - (time.monotonic() - created))

    def completed_job():
        for j in cluster.get("jobs", "-n", namespace)["items"]:
            if any(
                c["type"] == "Complete" and c["status"] == "True" for c in j.get("status", {}).get("conditions") or []
            ):
                return j
        return None

    j = cluster.wait_for("a CronJob run to complete", completed_job, timeout=remaining, interval=1)
    assert j["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert cluster.get("cronjob", "tick", "-n", namespace)["status"].get("lastScheduleTime")
    assert "tick" in cluster.kubectl("logs", f"job/{j['metadata']['name']}", "-n", namespace).stdout
