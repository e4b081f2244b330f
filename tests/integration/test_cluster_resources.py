"""The local test cluster's API machinery: version, CRDs with a status
subresource, garbage collection, scheduling."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.cluster import building

pytestmark = pytest.mark.integration


@pytest.fixture
def namespace(cluster):
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.podiq.io"},
    "spec": {
        "group": "test.podiq.io",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            },
                            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}


def test_server_reports_pinned_version(cluster):
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == building.KUBERNETES_VERSION
    assert version["clientVersion"]["gitVersion"] == building.KUBERNETES_VERSION


def test_crd_custom_resource_crud_with_status_subresource(cluster, namespace):
    cluster.apply(json.dumps(WIDGET_CRD))
    cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.test.podiq.io", "--timeout=30s")

    widget = {
        "apiVersion": "test.podiq.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": namespace},
        "spec": {"size": 3},
        "status": {"phase": "Sneaky"},
    }
    # The CRD may be Established before discovery in kubectl catches up.
    cluster.wait_for("widget created", lambda: cluster.kubectl("create", "-f", "-", input=json.dumps(widget)))
    created = cluster.get("widget", "w1", "-n", namespace)
    assert created["spec"] == {"size": 3}
    # With a status subresource, status sent to the main endpoint is dropped.
    assert "status" not in created
    assert created["metadata"]["generation"] == 1

    cluster.kubectl(
        "patch",
        "widget",
        "w1",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Ready"}}),
    )
    after_status = cluster.get("widget", "w1", "-n", namespace)
    assert after_status["status"] == {"phase": "Ready"}
    assert after_status["metadata"]["generation"] == 1  # status writes do not bump generation

    cluster.kubectl("patch", "widget", "w1", "-n", namespace, "--type=merge", "-p", '{"spec": {"size": 5}}')
    after_spec = cluster.get("widget", "w1", "-n", namespace)
    assert after_spec["spec"]["size"] == 5
    assert after_spec["metadata"]["generation"] == 2
    assert after_spec["status"] == {"phase": "Ready"}

    bad = cluster.kubectl(
        "patch", "widget", "w1", "-n", namespace, "--type=merge", "-p", '{"spec": {"size": "big"}}', check=False
    )
    assert bad.returncode != 0 and "size" in bad.stderr
    assert cluster.get("widgets", "-n", namespace)["items"][0]["spec"]["size"] == 5

    cluster.kubectl("delete", "widget", "w1", "-n", namespace, "--timeout=30s")
    assert cluster.get("widgets", "-n", namespace)["items"] == []


def test_deleting_owner_garbage_collects_children(cluster, namespace):
    cluster.kubectl("create", "configmap", "parent", "-n", namespace, "--from-literal=role=parent")
    parent_uid = cluster.get("configmap", "parent", "-n", namespace)["metadata"]["uid"]
    for i in range(3):
        child = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"child-{i}",
                "namespace": namespace,
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "parent", "uid": parent_uid}],
            },
        }
        cluster.apply(json.dumps(child))
    cluster.kubectl("create", "configmap", "orphan", "-n", namespace)

    cluster.kubectl("delete", "configmap", "parent", "-n", namespace)

    def children_gone():
        names = {cm["metadata"]["name"] for cm in cluster.get("configmaps", "-n", namespace)["items"]}
        return not any(n.startswith("child-") for n in names) and names

    names = cluster.wait_for("garbage collection of the children", children_gone, timeout=60)
    assert "orphan" in names  # unrelated objects stay


def test_unschedulable_pod_gets_scheduler_condition(cluster, namespace):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "too-big", "namespace": namespace},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.11-slim",
                    "command": ["python", "-V"],
                    "resources": {"requests": {"cpu": "1000"}},
                }
            ]
        },
    }
    cluster.apply(json.dumps(pod))

    def unschedulable():
        conds = cluster.get("pod", "too-big", "-n", namespace).get("status", {}).get("conditions", [])
        return next((c for c in conds if c["type"] == "PodScheduled" and c["status"] == "False"), None)

    cond = cluster.wait_for("PodScheduled=False", unschedulable, timeout=30)
    assert cond["reason"] == "Unschedulable"
    assert "Insufficient cpu" in cond["message"]
    assert not cluster.get("pod", "too-big", "-n", namespace)["spec"].get("nodeName")


def test_pod_without_command_fails_with_clear_reason(cluster, namespace):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "no-command", "namespace": namespace},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "nginx:1.27"}]},
    }
    cluster.apply(json.dumps(pod))
    status = cluster.wait_for(
        "pod to fail",
        lambda: (s := cluster.get("pod", "no-command", "-n", namespace)["status"]).get("phase") == "Failed" and s,
    )
    term = status["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "ContainerCannotRun"
    assert "no command" in term["message"]
    assert status["containerStatuses"][0]["image"] == "nginx:1.27"
