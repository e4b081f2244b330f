"""Reaching the API server: in-cluster config inside a pod, kubeconfig elsewhere."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes_asyncio import client, config

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class JsonBody(dict[str, Any]):
    """A request body that is plain JSON already (from ``model_dump(mode="json")``, say)."""


class ApiClient(client.ApiClient):
    """kubernetes-asyncio's client, which sends a :class:`JsonBody` as it is.

    The generated client rebuilds every body, dict by dict, in case it holds OpenAPI models:
    for the Jobs the operator creates that was as costly as encoding them.
    """

    def sanitize_for_serialization(self, obj: Any) -> Any:
        if isinstance(obj, JsonBody):
            return obj
        return super().sanitize_for_serialization(obj)


def in_cluster() -> bool:
    return "KUBERNETES_SERVICE_HOST" in os.environ and (SERVICE_ACCOUNT_DIR / "token").exists()


async def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """A client from `kubeconfig` (or $KUBECONFIG, ~/.kube/config), or in-cluster config in a pod."""
    configuration = client.Configuration()
    if kubeconfig is None and context is None and in_cluster():
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]  # untyped upstream
    else:
        await config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    configuration.proxy = configuration.proxy or environment_proxy(configuration.host or "")
    api = ApiClient(configuration)
    # kubernetes-asyncio's session trusts the environment, which makes aiohttp look up the
    # proxy variables and read ~/.netrc on a thread for every request: several per cent of a
    # busy operator's time. The proxy is looked up once, above, instead.
    api.rest_client.pool_manager._trust_env = False
    return api


def environment_proxy(url: str) -> str | None:
    """The proxy that HTTPS_PROXY/HTTP_PROXY (less NO_PROXY) give for ``url``, if any."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not proxies or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxies.get(parts.scheme)


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The pod's namespace in a cluster, else the kubeconfig context's, else "default"."""
    if kubeconfig is None and context is None and in_cluster():
        return (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip()
    try:
        loader = config.kube_config._get_kube_config_loader_for_yaml_file(
            kubeconfig or os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0],
            active_context=context,
        )
        context_entry: dict[str, Any] = loader.current_context or {}
        return str(context_entry["context"].get("namespace") or "default")
    except Exception:  # noqa: BLE001 - no kubeconfig yet: connecting will say what is missing
        return "default"
