"""Reaching the API server: in-cluster config inside a pod, kubeconfig elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes_asyncio import client, config

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def in_cluster() -> bool:
    return "KUBERNETES_SERVICE_HOST" in os.environ and (SERVICE_ACCOUNT_DIR / "token").exists()


async def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """A client from `kubeconfig` (or $KUBECONFIG, ~/.kube/config), or in-cluster config in a pod."""
    configuration = client.Configuration()
    if kubeconfig is None and context is None and in_cluster():
        config.load_incluster_config(client_configuration=configuration)
    else:
        await config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    return client.ApiClient(configuration)


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The pod's namespace in a cluster, else the kubeconfig context's, else "default"."""
    if kubeconfig is None and context is None and in_cluster():
        return (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip()
    try:
        loader = config.kube_config._get_kube_config_loader_for_yaml_file(
            kubeconfig or os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0],
            active_context=context,
        )
        return str(loader.current_context["context"].get("namespace") or "default")
    except Exception:  # no kubeconfig yet: connecting will say what is missing
        return "default"
