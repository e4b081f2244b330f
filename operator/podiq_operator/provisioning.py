"""Setting a namespace up for podiq the first time a TaskRun runs there.

With every namespace watched, the chart cannot know where tasks will be sent, so the
operator makes the runtime's ServiceAccount and a RoleBinding to the chart's runtime
ClusterRole itself (and the same for schedules' service account), just before it creates
the first Job in a namespace. Its own RBAC allows exactly that: creating service accounts
and role bindings, and ``bind`` on those ClusterRoles only (by ``resourceNames``), so it
cannot grant anything else. What exists already is left as it is (409 is success).

The bodies are plain functions; :class:`Provisioner` remembers which namespaces are done,
so each costs two or four writes once per operator process.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from podiq_operator.clusters import ConflictError
from podiq_operator.config import NamespaceConfig

__all__ = ["Provisioner", "role_binding", "service_account"]

logger = logging.getLogger(__name__)

#: Marks what the operator made, so that people (and `kubectl get -l`) can tell it from theirs.
LABELS = {"app.kubernetes.io/managed-by": "podiq", "app.kubernetes.io/name": "podiq"}


class ProvisioningApi(Protocol):
    async def create_service_account(self, body: dict[str, Any]) -> None:
        """Create; :class:`~podiq_operator.clusters.ConflictError` if it exists."""

    async def create_role_binding(self, body: dict[str, Any]) -> None:
        """Create; :class:`~podiq_operator.clusters.ConflictError` if it exists."""


def service_account(namespace: str, name: str, component: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**LABELS, "app.kubernetes.io/component": component},
        },
    }


def role_binding(namespace: str, account: str, cluster_role: str, component: str) -> dict[str, Any]:
    """Binds ``account`` in ``namespace`` to ``cluster_role``, for that namespace only."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": account,
            "namespace": namespace,
            "labels": {**LABELS, "app.kubernetes.io/component": component},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }


def bodies(namespace: str, runtime_account: str, config: NamespaceConfig) -> list[dict[str, Any]]:
    """What a namespace needs: each service account, then its binding."""
    wanted = [(runtime_account, config.runtime_cluster_role, "runtime")]
    if config.scheduler_service_account:
        wanted.append((config.scheduler_service_account, config.scheduler_cluster_role, "scheduler"))
    return [
        body
        for account, role, component in wanted
        for body in (service_account(namespace, account, component), role_binding(namespace, account, role, component))
    ]


class Provisioner:
    """Sets each namespace up once; concurrent first runs in one namespace share the work."""

    def __init__(self, api: ProvisioningApi, config: NamespaceConfig, runtime_account: str) -> None:
        self.api, self.config, self.runtime_account = api, config, runtime_account
        self._done: dict[str, asyncio.Future[None]] = {}
        """Namespace → its provisioning, under way or done."""

    async def ensure(self, namespace: str) -> None:
        """Make what ``namespace`` lacks; raises (and retries on the next call) if the API refuses."""
        if not self.config.provision:
            return
        task = self._done.get(namespace)
        if task is None:
            task = self._done[namespace] = asyncio.ensure_future(self._provision(namespace))
        try:
            await asyncio.shield(task)
        except Exception:
            if self._done.get(namespace) is task:
                del self._done[namespace]  # the next TaskRun there tries again
            raise

    async def _provision(self, namespace: str) -> None:
        made = []
        for body in bodies(namespace, self.runtime_account, self.config):
            create = (
                self.api.create_service_account if body["kind"] == "ServiceAccount" else self.api.create_role_binding
            )
            try:
                await create(body)
                made.append(f"{body['kind']} {body['metadata']['name']}")
            except ConflictError:
                pass
        if made:
            logger.info("Namespace %s set up for podiq: %s.", namespace, ", ".join(made))
