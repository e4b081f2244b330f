"""Malformed and hostile TaskRuns applied with kubectl: each is refused by the API server with
a message that names the field, or ends Failed with a reason that says what is wrong; the
operator keeps serving other runs throughout."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

TASK = "tests.integration.k8s_tasks:noop"
LONG = "x" * 2000

#: (spec or a whole object, words the API server's refusal must contain)
REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"taskName": "not a task"}, "spec.taskName"),
    ({"args": []}, "spec.taskName: Required value"),
    ({"taskName": TASK, "args": "not-a-list"}, "spec.args"),
    ({"taskName": TASK, "kwargs": [1, 2]}, "spec.kwargs"),
    ({"taskName": TASK, "labels": "x"}, "spec.labels"),
    ({"taskName": TASK, "maxRetries": -1}, "spec.maxRetries"),
    ({"taskName": TASK, "maxRetries": 1000}, "spec.maxRetries"),
    ({"taskName": TASK, "maxRetries": "3"}, "spec.maxRetries"),
    ({"taskName": TASK, "retryOnError": "yes"}, "spec.retryOnError"),
    ({"taskName": TASK, "timeoutSeconds": -5}, "spec.timeoutSeconds"),
    ({"taskName": TASK, "timeoutSeconds": 0}, "spec.timeoutSeconds"),
    ({"taskName": TASK, "timeoutSeconds": "ten"}, "spec.timeoutSeconds"),
    ({"taskName": TASK, "ttlSecondsAfterFinished": -1}, "spec.ttlSecondsAfterFinished"),
    ({"taskName": TASK, "notBefore": "tomorrow"}, "spec.notBefore"),
    ({"taskName": TASK, "cancelled": "true"}, "spec.cancelled"),
    ({"taskName": TASK, "serviceAccountName": "Bad_Name"}, "spec.serviceAccountName"),
    ({"taskName": TASK, "queueName": "UPPER CASE"}, "spec.queueName"),
    ({"taskName": TASK, "env": [{"name": "1 bad", "value": "x"}]}, "spec.env[0].name"),
    ({"taskName": TASK, "env": {"A": "b"}}, "spec.env"),
    ({"taskName": TASK, "env": [{"name": "A", "value": 123}]}, "spec.env[0].value"),
    ({"taskName": TASK, "image": LONG}, "spec.image"),
    ({"taskName": "a" * 600 + ":f"}, "spec.taskName"),
    ({"taskName": TASK, "resources": "lots"}, "spec.resources"),
    ({"taskName": TASK, "resources": {"limits": "x"}}, "spec.resources.limits"),
    ({"taskName": TASK, "pendingDeadlineSeconds": 0}, "spec.pendingDeadlineSeconds"),
    ({"taskName": TASK, "pendingDeadlineSeconds": 10**9}, "spec.pendingDeadlineSeconds"),
    ({"taskName": TASK, "taskId": ""}, "spec.taskId"),
    ({"taskName": TASK, "unknownField": 1}, 'unknown field "spec.unknownField"'),
    ({"taskName": TASK, "args": ["y" * (4 * 1024 * 1024)]}, "too large"),
]


def _manifest(name: str, spec: dict[str, Any] | None, **extra: Any) -> str:
    body = {"apiVersion": "podiq.io/v1alpha1", "kind": "TaskRun", "metadata": {"name": name}, **extra}
    if spec is not None:
        body["spec"] = spec
    return json.dumps(body)


def test_malformed_taskruns_are_refused_with_a_message_naming_the_field(cluster: Any, podiq_namespace: str) -> None:
    missing: list[str] = []
    for i, (spec, words) in enumerate(REFUSED):
        applied = cluster.kubectl(
            "apply", "-n", podiq_namespace, "-f", "-", input=_manifest(f"bad-{i}", spec), check=False
        )
        if applied.returncode == 0 or words.lower() not in applied.stderr.lower():
            missing.append(f"{spec!s:.80}: {applied.returncode} {applied.stdout}{applied.stderr[:300]}")
    for manifest, words in [
        (_manifest("no-spec", None), "spec: Required value"),
        (_manifest("UPPER", {"taskName": TASK}), "metadata.name"),
        (
            json.dumps(
                {"apiVersion": "podiq.io/v2", "kind": "TaskRun", "metadata": {"name": "v2"}, "spec": {"taskName": TASK}}
            ),
            "no matches for kind",
        ),
    ]:
        applied = cluster.kubectl("apply", "-n", podiq_namespace, "-f", "-", input=manifest, check=False)
        if applied.returncode == 0 or words.lower() not in applied.stderr.lower():
            missing.append(f"{manifest:.80}: {applied.stderr[:300]}")
    assert not missing, "\n".join(missing)


#: Accepted by the API server; each must end Failed (or as stated) with words that say why.
ENDS: list[tuple[dict[str, Any], str, str, str]] = [
    ({"taskName": "tests.integration.k8s_tasks:no_such_task"}, "Failed", "Failed", "UnknownTaskError"),
    ({"taskName": "no_such_module_anywhere:f"}, "Failed", "Failed", "ModuleNotFoundError"),
    ({"taskName": TASK, "args": [1, 2, 3]}, "Failed", "Failed", "Error"),
    (
        {"taskName": TASK, "serviceAccountName": "nobody", "pendingDeadlineSeconds": 3},
        "Failed",
        "ServiceAccountMissing",
        'serviceaccount "nobody" not found',
    ),
    (
        {"taskName": TASK, "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
        "Failed",
        "InvalidPodSpec",
        "must be less than or equal to cpu limit",
    ),
    ({"taskName": TASK, "resources": {"limits": {"cpu": "lots"}}}, "Failed", "InvalidPodSpec", "quantities must match"),
    ({"taskName": TASK, "image": " padded ", "pendingDeadlineSeconds": 5}, "Failed", "InvalidPodSpec", "whitespace"),
    ({"taskName": TASK, "image": ""}, "Succeeded", "Succeeded", ""),  # empty: the operator's default image
    ({"taskName": TASK, "timeoutSeconds": 1e30}, "Failed", "InvalidPodSpec", "activeDeadlineSeconds"),
    (
        {"taskName": TASK, "env": [{"name": "PODIQ_TASKRUN_NAME", "value": "someone-else"}]},
        "Succeeded",
        "Succeeded",
        "",
    ),
    ({"taskName": TASK, "notBefore": "1970-01-01T00:00:00Z"}, "Succeeded", "Succeeded", ""),
    ({"taskName": TASK, "cancelled": True}, "Cancelled", "Cancelled", "Cancelled"),
]


def test_accepted_but_wrong_taskruns_end_with_a_reason_that_says_why(
    cluster: Any,
    podiq_namespace: str,
    podiq_operator: Any,
) -> None:
    names = {}
    for spec, phase, reason, words in ENDS:
        name = f"hostile-{uuid.uuid4().hex[:8]}"
        # A status in the object as created is dropped by the API server: the run runs all the same.
        cluster.kubectl(
            "apply", "-n", podiq_namespace, "-f", "-", input=_manifest(name, spec, status={"phase": "Succeeded"})
        )
        names[name] = (phase, reason, words)

    def ended() -> dict[str, Any] | None:
        items = cluster.get("taskruns", "-n", podiq_namespace)["items"]
        statuses = {i["metadata"]["name"]: i.get("status", {}) for i in items if i["metadata"]["name"] in names}
        done = {
            n: s for n, s in statuses.items() if (s.get("conditions") or [{}])[0].get("status") in ("True", "False")
        }
        return done if len(done) == len(names) else None

    done = cluster.wait_for("every hostile TaskRun to end", ended, timeout=150, interval=1)
    wrong = []
    for name, (phase, reason, words) in names.items():
        status = done[name]
        condition = status["conditions"][0]
        said = condition["message"] + json.dumps(status.get("result") or {})
        if (status["phase"], condition["reason"]) != (phase, reason) or words not in said:
            wrong.append(
                f"{name}: {status['phase']} {condition['reason']}: {said[:300]} (wanted {phase} {reason} {words!r})"
            )
    assert not wrong, "\n".join(wrong)

    # Un-cancelling a cancelled run changes nothing: it stays Cancelled, no Job is made.
    (cancelled,) = [n for n, (phase, _, _) in names.items() if phase == "Cancelled"]
    cluster.kubectl(
        "patch", "taskrun", cancelled, "-n", podiq_namespace, "--type=merge", "-p", '{"spec":{"cancelled":false}}'
    )
    # A status written by hand on a finished run is not undone, and starts nothing.
    cluster.kubectl(
        "patch",
        "taskrun",
        cancelled,
        "-n",
        podiq_namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Running"}}',
    )
    follow = cluster.get("taskrun", cancelled, "-n", podiq_namespace)["status"]
    assert follow["conditions"][0]["reason"] == "Cancelled"
    assert not cluster.get("jobs", "-n", podiq_namespace, "-l", f"podiq.io/taskrun={cancelled}")["items"]
    assert podiq_operator.process.poll() is None, "the operator kept running"
