"""The CRD is generated from the models, is structural, and rejects malformed TaskRuns."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from podiq.kubernetes import TaskRun
from podiq.kubernetes.crd import render_crd, render_crd_yaml

ROOT = Path(__file__).resolve().parents[3]
CRD_FILE = ROOT / "crds" / "taskrun.yaml"


def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_FILE.read_text())


def openapi_schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _as_json_schema(node: Any) -> Any:
    """The API server's reading of the OpenAPI schema, in draft 4 JSON Schema terms."""
    if isinstance(node, dict):
        node = {k: _as_json_schema(v) for k, v in node.items()}
        if node.pop("x-kubernetes-int-or-string", False):
            node["type"] = ["integer", "string"]
    elif isinstance(node, list):
        node = [_as_json_schema(v) for v in node]
    return node


def validator() -> jsonschema.Validator:
    # OpenAPI v3.0 schemas are close to JSON Schema draft 4 (boolean exclusiveMinimum);
    # the other x-kubernetes-* keywords only affect pruning, which jsonschema does not do.
    schema = _as_json_schema(openapi_schema())
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def test_crd_file_is_what_the_models_generate() -> None:
    assert CRD_FILE.read_text() == render_crd_yaml(), (
        "crds/taskrun.yaml is stale: run `python -m podiq.kubernetes.crd > crds/taskrun.yaml` "
        "and copy it to charts/podiq/crds/"
    )


def test_chart_ships_the_same_crd() -> None:
    assert (ROOT / "charts" / "podiq" / "crds" / "taskrun.yaml").read_bytes() == CRD_FILE.read_bytes()


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_schema_is_structural() -> None:
    """The API server's rules: every node typed (or an explicit escape), no refs or unions."""
    for path, node in _walk(openapi_schema()):
        escapes = node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
        assert node.get("type") or escapes, f"{path} has no type"
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "nullable", "default", "title", "$defs"):
            assert banned not in node, f"{path} has {banned}"
        if node.get("type") == "object" and node.get("additionalProperties") is not None:
            assert "properties" not in node, f"{path}: properties and additionalProperties are exclusive"


def test_arbitrary_json_only_where_values_are_arbitrary() -> None:
    preserved = {p for p, n in _walk(openapi_schema()) if n.get("x-kubernetes-preserve-unknown-fields")}
    assert preserved == {".spec.args[]", ".spec.kwargs", ".spec.labels", ".status.result"}


def test_crd_names_and_columns() -> None:
    spec = crd()["spec"]
    assert spec["names"]["shortNames"] == ["pqr"] and "tr" not in spec["names"]["shortNames"]
    assert spec["names"]["categories"] == ["podiq"]
    assert spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Task", "Phase", "Progress", "Attempts", "Duration", "Age"]
    for column in version["additionalPrinterColumns"]:
        if column["jsonPath"].startswith((".spec.", ".status.")) and "[" not in column["jsonPath"]:
            node = openapi_schema()
            for part in column["jsonPath"].strip(".").split("."):
                node = node["properties"][part]
            assert node["type"] == column["type"], column["name"]


def test_every_model_field_is_in_the_schema() -> None:
    schema = openapi_schema()["properties"]
    for model, key in (
        (TaskRun.model_fields["spec"].annotation, "spec"),
        (TaskRun.model_fields["status"].annotation, "status"),
    ):
        aliases = {f.alias for f in model.model_fields.values()}  # type: ignore[union-attr]  # present here
        assert aliases == set(schema[key]["properties"]), key


GOOD: dict[str, Any] = {
    "apiVersion": "podiq.io/v1alpha1",
    "kind": "TaskRun",
    "metadata": {"name": "add-1"},
    "spec": {
        "taskName": "app.tasks:add",
        "args": [1, "two", None, {"x": [3.5]}],
        "kwargs": {"k": {"nested": True}},
        "labels": {"timeout": 30, "retry_on_error": True},
        "image": "registry.example/app:1.0",
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1}},
        "env": [{"name": "MODE", "value": "fast"}],
        "serviceAccountName": "worker",
        "timeoutSeconds": 12.5,
        "retryOnError": True,
        "maxRetries": 5,
        "notBefore": "2026-05-01T10:00:00Z",
        "cancelled": False,
        "ttlSecondsAfterFinished": 3600,
        "queueName": "team-a",
    },
    "status": {
        "phase": "Succeeded",
        "conditions": [
            {
                "type": "Succeeded",
                "status": "True",
                "reason": "Succeeded",
                "message": "ok",
                "lastTransitionTime": "2026-05-01T10:00:05Z",
            }
        ],
        "attempts": 1,
        "reportedAttempt": 1,
        "jobName": "add-1-a1",
        "podName": "add-1-a1-xyz",
        "startTime": "2026-05-01T10:00:01Z",
        "completionTime": "2026-05-01T10:00:05Z",
        "duration": "4s",
        "progress": {"current": 10, "total": 10},
        "progressText": "10/10",
        "result": {"is_err": False, "return_value": [1, 2], "execution_time": 0.1, "labels": {}},
    },
}


def test_good_run_is_accepted() -> None:
    validator().validate(GOOD)
    assert TaskRun.from_api(GOOD).status.is_succeeded()


def test_minimal_run_is_accepted() -> None:
    validator().validate({"apiVersion": "podiq.io/v1alpha1", "kind": "TaskRun", "spec": {"taskName": "m:f"}})


def _with(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return body


_DELETE = object()

BAD = {
    "no spec": ("spec", _DELETE),
    "no task name": ("spec.taskName", _DELETE),
    "task name without function": ("spec.taskName", "app.tasks"),
    "task name with spaces": ("spec.taskName", "app tasks:add"),
    "task name starting with a digit": ("spec.taskName", "1app:add"),
    "task name too long": ("spec.taskName", "m" * 600 + ":f"),
    "args not a list": ("spec.args", {"a": 1}),
    "kwargs not an object": ("spec.kwargs", [1]),
    "negative retries": ("spec.maxRetries", -1),
    "too many retries": ("spec.maxRetries", 1000),
    "retries as string": ("spec.maxRetries", "3"),
    "zero timeout": ("spec.timeoutSeconds", 0),
    "negative ttl": ("spec.ttlSecondsAfterFinished", -5),
    "cancelled as string": ("spec.cancelled", "yes"),
    "notBefore not a time": ("spec.notBefore", "tomorrow"),
    "env without name": ("spec.env", [{"value": "x"}]),
    "env with bad name": ("spec.env", [{"name": "A=B", "value": "x"}]),
    "service account uppercase": ("spec.serviceAccountName", "Worker"),
    "queue name with slash": ("spec.queueName", "a/b"),
    "resource quantity as list": ("spec.resources.limits", {"cpu": [1]}),
    "unknown phase": ("status.phase", "Exploded"),
    "unknown reason": ("status.conditions.0.reason", "Whatever"),
    "condition status lowercase": ("status.conditions.0.status", "true"),
    "negative attempts": ("status.attempts", -1),
    "progress without total": ("status.progress", {"current": 1}),
    "result not an object": ("status.result", "pickled-bytes"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_runs_are_rejected(case: str) -> None:
    path, value = BAD[case]
    body = _with(path, value)
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(body)
    # The models refuse what the server refuses.
    if path != "spec":
        with pytest.raises(ValueError):
            TaskRun.from_api(body)


def test_render_is_deterministic() -> None:
    assert render_crd() == render_crd()


def test_pool_crd_file_is_what_the_models_generate_and_the_chart_ships_it() -> None:
    pool_file = ROOT / "crds" / "taskpool.yaml"
    assert pool_file.read_text() == render_crd_yaml("taskpool"), (
        "crds/taskpool.yaml is stale: run `python -m podiq.kubernetes.crd taskpool > crds/taskpool.yaml` "
        "and copy it to charts/podiq/crds/"
    )
    assert (ROOT / "charts" / "podiq" / "crds" / "taskpool.yaml").read_bytes() == pool_file.read_bytes()


def test_pool_crd_validates_pools_like_the_models() -> None:
    from podiq.kubernetes.taskpools import TaskPoolSpec

    schema = _as_json_schema(yaml.safe_load((ROOT / "crds" / "taskpool.yaml").read_text()))
    check = jsonschema.Draft4Validator(schema["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    good = {"spec": {"minReplicas": 0, "maxReplicas": 2, "concurrency": 4, "imports": ["app.tasks"]}}
    assert not list(check.iter_errors(good))
    TaskPoolSpec.model_validate(good["spec"])
    assert list(check.iter_errors({"spec": {"maxReplicas": 0}}))
    assert list(check.iter_errors({"spec": {"concurrency": "8"}}))
    with pytest.raises(ValueError, match="minReplicas"):
        TaskPoolSpec.model_validate({"minReplicas": 3, "maxReplicas": 2})


def test_taskruns_show_their_pool_and_pod() -> None:
    columns = {c["name"]: c["jsonPath"] for c in crd()["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["Pool"] == ".spec.pool" and columns["Pod"] == ".status.podName"
    assert openapi_schema()["properties"]["spec"]["properties"]["pool"]["maxLength"] == 40
