"""The chart's Redis: its own (redis.enabled) or the user's (redis.url), rendered with Helm."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
import yaml

from podiq.kubernetes.storage import StoreSettings
from podiq_operator.config import OperatorConfig

from .test_chart_static import CHART, _helm, values


def render(*sets: str, check: bool = True) -> list[dict[str, Any]] | str:
    helm = _helm()
    if helm is None:
        if os.environ.get("CI"):
            pytest.fail("CI must render the chart: build helm with `python -m tests.cluster build`")
        pytest.skip("helm is not built yet: run `python -m tests.cluster build` (or set PODIQ_HELM)")
    args = [helm, "template", "r", str(CHART), "--namespace", "podiq-system", "--kube-version", "1.37.2"]
    for item in sets:
        args += ["--set", item]
    done = subprocess.run(args, capture_output=True, text=True)
    if not check:
        return done.stderr
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def operator_env(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "r-podiq-operator"]
    return deployment["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[no-any-return]  # typed by the caller


def test_the_values_match_the_settings_defaults() -> None:
    redis = values()["redis"]
    defaults = StoreSettings()
    assert redis["enabled"] is False and redis["url"] == ""
    assert (
        redis["argsInlineLimitBytes"],
        redis["resultInlineLimitBytes"],
        redis["ttlSeconds"],
        redis["logTailBytes"],
    ) == (
        defaults.args_inline_limit,
        defaults.result_inline_limit,
        defaults.ttl,
        defaults.log_tail,
    )


def test_without_redis_nothing_of_it_is_rendered() -> None:
    docs = render()
    assert isinstance(docs, list)
    assert not [d for d in docs if "redis" in d["metadata"]["name"]]
    assert not [e for e in operator_env(docs) if e["name"].startswith("PODIQ_REDIS")]


def test_the_charts_redis_is_restricted_and_its_password_generated() -> None:
    docs = render("redis.enabled=true", "watchNamespaces={a,b}")
    assert isinstance(docs, list)
    kinds = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs}
    assert {
        ("Deployment", "podiq-system", "r-podiq-redis"),
        ("Service", "podiq-system", "r-podiq-redis"),
        ("Secret", "podiq-system", "r-podiq-redis"),
        ("Role", "a", "r-podiq-operator-redis"),
        ("RoleBinding", "b", "r-podiq-operator-redis"),
    } <= kinds
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    assert len(secret["data"]["password"]) > 40
    (redis,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "r-podiq-redis"]
    pod = redis["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert (
        pod["securityContext"]["runAsNonRoot"] is True
        and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    )
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["image"] == "docker.io/library/redis:7.4-alpine" and "$(REDIS_PASSWORD)" in container["args"]
    (role,) = [
        d
        for d in docs
        if d["kind"] == "Role" and d["metadata"]["namespace"] == "a" and "redis" in d["metadata"]["name"]
    ]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["podiq-redis"], "verbs": ["get", "update"]},
    ]
    env = operator_env(docs)
    password = next(e for e in env if e["name"] == "PODIQ_REDIS_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {"name": "r-podiq-redis", "key": "password"}
    plain = {e["name"]: e["value"] for e in env if "value" in e}
    # Kubernetes expands $(PODIQ_REDIS_PASSWORD), defined before it.
    expanded = {**plain, "PODIQ_REDIS_URL": plain["PODIQ_REDIS_URL"].replace("$(PODIQ_REDIS_PASSWORD)", "pw")}
    config = OperatorConfig.from_env(expanded)
    assert config.store.url == "redis://:pw@r-podiq-redis.podiq-system.svc:6379/0"
    assert config.store == StoreSettings(url=config.store.url) and config.jobs.store_secret == "podiq-redis"


def test_your_own_redis_needs_its_secret() -> None:
    docs = render("redis.url=rediss://cache.example:6380/2", "redis.existingSecret=cache", "redis.passwordKey=admin")
    assert isinstance(docs, list)
    assert not [
        d for d in docs if d["kind"] in ("Deployment", "Service", "Secret") and "redis" in d["metadata"]["name"]
    ]
    assert ("ClusterRole", "r-podiq-operator-redis") in {(d["kind"], d["metadata"]["name"]) for d in docs}
    env = {e["name"]: e for e in operator_env(docs)}
    assert env["PODIQ_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "cache", "key": "admin"}
    assert env["PODIQ_REDIS_URL"]["value"] == "rediss://:$(PODIQ_REDIS_PASSWORD)@cache.example:6380/2"
    assert "redis.url needs redis.existingSecret" in str(render("redis.url=redis://r:6379/0", check=False))
    assert "not both" in str(
        render("redis.url=redis://r:6379/0", "redis.existingSecret=s", "redis.enabled=true", check=False)
    )


def test_the_charts_redis_takes_another_image_and_a_fixed_cluster_ip() -> None:
    """For clusters without DNS (the kind tier's) and without a registry: the URL names the IP."""
    docs = render(
        "redis.enabled=true",
        "redis.image.repository=podiq-kind/redis",
        "redis.image.tag=7.0.15",
        "redis.service.clusterIP=10.96.0.50",
    )
    assert isinstance(docs, list)
    (service,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "r-podiq-redis"]
    assert service["spec"]["clusterIP"] == "10.96.0.50"
    (redis,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "r-podiq-redis"]
    assert redis["spec"]["template"]["spec"]["containers"][0]["image"] == "podiq-kind/redis:7.0.15"
    url = {e["name"]: e.get("value") for e in operator_env(docs)}["PODIQ_REDIS_URL"]
    assert url == "redis://:$(PODIQ_REDIS_PASSWORD)@10.96.0.50:6379/0"
    # Unset, the Service gets an allocated address and the URL its DNS name.
    docs = render("redis.enabled=true")
    assert isinstance(docs, list)
    (service,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "r-podiq-redis"]
    assert "clusterIP" not in service["spec"]
