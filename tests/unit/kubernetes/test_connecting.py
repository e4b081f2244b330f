"""The API client podiq builds: proxies from the environment, looked up once; JSON bodies sent as they are."""

from __future__ import annotations

import datetime

import pytest

from podiq.kubernetes.connecting import ApiClient, JsonBody, environment_proxy


def test_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert environment_proxy("https://10.0.0.1:6443") is None
    monkeypatch.setenv("https_proxy", "http://proxy:3128")
    assert environment_proxy("https://10.0.0.1:6443") == "http://proxy:3128"
    monkeypatch.setenv("no_proxy", "10.0.0.1,.cluster.local")
    assert environment_proxy("https://10.0.0.1:6443") is None
    assert environment_proxy("https://kubernetes.default.svc.cluster.local") is None


async def test_json_bodies_are_sent_as_they_are_and_others_are_sanitised() -> None:
    api = ApiClient()
    try:
        body = JsonBody(metadata={"name": "x"}, spec={"n": [1, 2]})
        assert api.sanitize_for_serialization(body) is body
        when = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
        assert api.sanitize_for_serialization({"at": when}) == {"at": when.isoformat()}
    finally:
        await api.close()
