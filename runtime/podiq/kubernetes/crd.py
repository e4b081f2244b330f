"""The TaskRun CustomResourceDefinition, generated from the models in :mod:`.resources`.

The models are the single source: this module turns their JSON Schema (pydantic's,
JSON Schema 2020-12) into the *structural* OpenAPI v3.0 schema the API server wants:
references inlined, optional fields as absent-not-null, ``x-kubernetes-*`` markers
where values are arbitrary JSON. ``crds/taskrun.yaml`` and the chart's copy are this
module's output, and a unit test fails when they drift::

    python -m podiq.kubernetes.crd > crds/taskrun.yaml
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import yaml
from pydantic import BaseModel

from podiq.kubernetes import resources as r

__all__ = ["render_crd", "render_crd_yaml", "render_pool_crd", "structural_schema"]

HEADER = (
    "# Generated from runtime/podiq/kubernetes/{source} by\n"
    "#   python -m podiq.kubernetes.crd{arg} > crds/{kind}.yaml\n"
    "# Do not edit by hand; charts/podiq/crds/{kind}.yaml is an identical copy.\n"
)
_SOURCES = {"taskrun": "resources.py", "taskpool": "taskpools.py"}

_DROPPED = {"title", "default"}
_NULL = {"type": "null"}
_PRESERVE = "x-kubernetes-preserve-unknown-fields"

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Task", "type": "string", "jsonPath": ".spec.taskName"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Progress", "type": "string", "jsonPath": ".status.progressText"},
    {"name": "Attempts", "type": "integer", "jsonPath": ".status.attempts"},
    {"name": "Duration", "type": "string", "jsonPath": ".status.duration"},
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": f'.status.conditions[?(@.type=="{r.SUCCEEDED}")].reason',
    },
    {"name": "Job", "type": "string", "priority": 1, "jsonPath": ".status.jobName"},
    {"name": "Pool", "type": "string", "priority": 1, "jsonPath": ".spec.pool"},
    {"name": "Pod", "type": "string", "priority": 1, "jsonPath": ".status.podName"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def structural_schema(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Convert one pydantic JSON Schema node to a structural OpenAPI v3.0 node."""
    defs = defs if defs is not None else schema.get("$defs", {})
    node = {k: v for k, v in schema.items() if k not in _DROPPED and k != "$defs"}

    if "$ref" in node:
        # A copy: a model used twice must not come out as YAML anchors and aliases.
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        merged = {**target, **node}  # the field's own description wins over the model's
        return structural_schema(merged, defs)

    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o != _NULL]
        types = sorted(o.get("type", "") for o in options)
        if len(options) == 1:
            # Optional[X]: absent rather than null (to_api() drops None), so X itself.
            return structural_schema({**options[0], **node}, defs)
        if types == ["integer", "string"]:
            return {**node, "x-kubernetes-int-or-string": True}
        raise ValueError(f"no structural form for anyOf {options!r}")

    if "exclusiveMinimum" in node:
        # JSON Schema 2020 has a numeric bound; OpenAPI v3.0 a flag beside `minimum`.
        node["minimum"] = node.pop("exclusiveMinimum")
        node["exclusiveMinimum"] = True

    kind = node.get("type")
    if kind is None and "enum" not in node:
        # Any: arbitrary JSON (task arguments, return values).
        return {**node, _PRESERVE: True}
    if kind == "object":
        extra = node.pop("additionalProperties", None)
        if "properties" in node:
            node["properties"] = {k: structural_schema(v, defs) for k, v in node["properties"].items()}
        if extra is True or (extra is None and "properties" not in node) or extra == {}:
            node[_PRESERVE] = True
        elif isinstance(extra, dict):
            node["additionalProperties"] = structural_schema(extra, defs)
    if kind == "array":
        node["items"] = structural_schema(node.get("items", {}), defs)
    return node


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    return structural_schema(model.model_json_schema(by_alias=True, mode="validation"))


POOL_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Min", "type": "integer", "jsonPath": ".spec.minReplicas"},
    {"name": "Max", "type": "integer", "jsonPath": ".spec.maxReplicas"},
    {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
    {"name": "Backlog", "type": "integer", "jsonPath": ".status.backlog"},
    {"name": "Busy", "type": "integer", "jsonPath": ".status.busy"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def render_crd() -> dict[str, Any]:
    """The TaskRun CustomResourceDefinition as a dict."""
    return _render(
        r.KIND,
        r.PLURAL,
        r.SINGULAR,
        r.SHORT_NAMES,
        r.TaskRunSpec,
        r.TaskRunStatus,
        PRINTER_COLUMNS,
        "One call of a podiq task. Each attempt runs as a Job owned by the TaskRun, or on a TaskPool's worker.",
    )


def render_pool_crd() -> dict[str, Any]:
    """The TaskPool CustomResourceDefinition as a dict."""
    from podiq.kubernetes import taskpools as p

    crd = _render(
        p.POOL_KIND,
        p.POOL_PLURAL,
        p.POOL_SINGULAR,
        p.POOL_SHORT_NAMES,
        p.TaskPoolSpec,
        p.TaskPoolStatus,
        POOL_PRINTER_COLUMNS,
        "A pool of warm podiq runtime workers; TaskRuns with spec.pool run on them.",
    )
    del crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["required"]  # an empty spec is a valid pool
    return crd


def _render(
    kind: str,
    plural: str,
    singular: str,
    short_names: tuple[str, ...],
    spec_model: type[BaseModel],
    status_model: type[BaseModel],
    columns: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    root = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": _model_schema(spec_model),
            "status": _model_schema(status_model),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{r.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "podiq"},
        },
        "spec": {
            "group": r.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": list(short_names),
                "categories": list(r.CATEGORIES),
            },
            "versions": [
                {
                    "name": r.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render_crd_yaml(kind: str = "taskrun") -> str:
    """The CRD file of ``kind`` (``taskrun`` or ``taskpool``), as written to crds/."""
    crd = render_pool_crd() if kind == "taskpool" else render_crd()
    body = yaml.safe_dump(crd, sort_keys=False, width=100, allow_unicode=True)
    return HEADER.format(source=_SOURCES[kind], kind=kind, arg="" if kind == "taskrun" else f" {kind}") + body


def main() -> None:
    sys.stdout.write(render_crd_yaml(sys.argv[1] if len(sys.argv) > 1 else "taskrun"))


if __name__ == "__main__":
    main()
