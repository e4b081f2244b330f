"""The chart's TaskPool scaling: by the operator (default) or by KEDA ScaledObjects, rendered with Helm."""

from __future__ import annotations

from typing import Any

from podiq.kubernetes.dispatch import GROUP, stream_key
from podiq_operator.config import OperatorConfig

from .test_chart_redis import operator_env, render

KEDA = [
    "pools.scaling=keda",
    "redis.url=rediss://cache.example:6380/2",
    "redis.existingSecret=cache",
    "pools.keda.pools[0].name=fast",
    "pools.keda.pools[0].namespace=jobs",
    "pools.keda.pools[0].maxReplicas=6",
    "pools.keda.pools[0].runsPerWorker=4",
    "pools.keda.pools[1].name=batch",
    "pools.keda.pools[1].namespace=jobs",
]


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def operator_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (role,) = [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "r-podiq-operator"]
    return role["rules"]  # type: ignore[no-any-return]  # typed by the caller


def test_by_default_the_operator_scales_and_no_keda_object_is_rendered() -> None:
    docs = render()
    assert isinstance(docs, list)
    assert not kinds(docs, "ScaledObject") and not kinds(docs, "TriggerAuthentication")
    env = {e["name"]: e.get("value") for e in operator_env(docs)}
    assert env["PODIQ_POOL_SCALING"] == "operator"
    assert OperatorConfig.from_env({"PODIQ_POOL_SCALING": env["PODIQ_POOL_SCALING"]}).pool_scaling == "operator"
    rules = operator_rules(docs)
    assert any(r["resources"] == ["deployments/scale"] and "patch" in r["verbs"] for r in rules)
    assert any(r["resources"] == ["pods"] and "patch" in r["verbs"] for r in rules)  # the deletion cost


def test_keda_renders_a_scaled_object_per_pool_on_its_stream_and_group() -> None:
    docs = render(*KEDA)
    assert isinstance(docs, list)
    objects = {d["metadata"]["name"]: d for d in kinds(docs, "ScaledObject")}
    assert sorted(objects) == ["podiq-pool-batch", "podiq-pool-fast"]
    fast = objects["podiq-pool-fast"]
    assert fast["apiVersion"] == "keda.sh/v1alpha1" and fast["metadata"]["namespace"] == "jobs"
    assert fast["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podiq-pool-fast"}
    assert (fast["spec"]["minReplicaCount"], fast["spec"]["maxReplicaCount"]) == (0, 6)
    pending, length = fast["spec"]["triggers"]
    for trigger in (pending, length):
        assert trigger["type"] == "redis-streams" and trigger["authenticationRef"] == {"name": "podiq-redis"}
        meta = trigger["metadata"]
        # The very key and group the workers read (podiq.kubernetes.dispatch), on the user's Redis.
        assert meta["stream"] == stream_key("jobs", "fast") and meta["consumerGroup"] == GROUP
        assert (meta["address"], meta["databaseIndex"], meta["enableTLS"]) == ("cache.example:6380", "2", "true")
    assert pending["metadata"]["pendingEntriesCount"] == "4" and "streamLength" not in pending["metadata"]
    assert length["metadata"]["streamLength"] == "4"  # wakes a pool at zero, where nothing is pending
    assert objects["podiq-pool-batch"]["spec"]["triggers"][0]["metadata"]["pendingEntriesCount"] == "8"
    (auth,) = kinds(docs, "TriggerAuthentication")  # one per namespace
    assert auth["metadata"] == {**auth["metadata"], "name": "podiq-redis", "namespace": "jobs"}
    assert {(r["parameter"], r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]} == {
        ("username", "podiq-redis", "username"),
        ("password", "podiq-redis", "password"),
    }
    # The operator leaves replicas alone, and may no longer scale Deployments or annotate pods.
    env = {e["name"]: e.get("value") for e in operator_env(docs)}
    assert OperatorConfig.from_env({"PODIQ_POOL_SCALING": env["PODIQ_POOL_SCALING"]}).pool_scaling == "keda"
    rules = operator_rules(docs)
    assert not any(r["resources"] == ["deployments/scale"] for r in rules)
    assert any(r["resources"] == ["pods"] and "patch" not in r["verbs"] for r in rules)


def test_keda_without_redis_or_with_a_typo_is_refused_with_the_fix() -> None:
    assert "pools.scaling=keda needs Redis" in str(render("pools.scaling=keda", check=False))
    assert "set it to operator (the default) or keda" in str(render("pools.scaling=Keda", check=False))
    refused = render("pools.scaling=keda", "redis.enabled=true", "pools.keda.pools[0].name=fast", check=False)
    assert "needs name and namespace" in str(refused)


def test_the_operator_refuses_an_unknown_scaling_with_the_fix() -> None:
    import pytest

    with pytest.raises(ValueError, match="'operator' .* or 'keda'"):
        OperatorConfig.from_env({"PODIQ_POOL_SCALING": "hpa"})


def test_the_namespace_secret_carries_the_user_and_password_for_keda() -> None:
    import base64

    from podiq_operator.storage import namespace_secret

    data = namespace_secret("jobs", "redis://podiq-jobs:s%40cret@h:1/0")["data"]
    decoded = {k: base64.b64decode(v).decode() for k, v in data.items()}
    assert decoded == {"url": "redis://podiq-jobs:s%40cret@h:1/0", "username": "podiq-jobs", "password": "s@cret"}
