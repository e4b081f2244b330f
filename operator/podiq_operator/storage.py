"""Redis for the namespaces the operator serves: a user per namespace, its Secret, and cleanup.

Each namespace's task pods get their own Redis ACL user, allowed only keys under
``podiq:<namespace>:`` and the value commands (:func:`podiq.kubernetes.storage.namespace_acl`),
so a task cannot read another namespace's arguments, results or output. The operator holds
the admin connection; pods get the namespace's URL from the Secret :data:`NAMESPACE_SECRET`
in their namespace, as ``PODIQ_REDIS_URL``.

The namespace's password is derived from the admin password (HMAC-SHA256 of the namespace),
so provisioning is idempotent and keeps no state: a restarted operator, or a Redis that
lost its ACL users, gets the same user and Secret again. Rotating the admin password
rotates every namespace's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from kubernetes_asyncio import client

from podiq.exceptions import StoreError
from podiq.kubernetes.api import SECRETS, ApiError, ConflictError, ObjectApi
from podiq.kubernetes.resources import TaskRun
from podiq.kubernetes.storage import RedisStore, namespace_user, run_keys, with_credentials
from podiq_operator.config import NAMESPACE_SECRET

__all__ = ["NAMESPACE_SECRET", "NamespaceStorage", "namespace_password", "namespace_secret"]

logger = logging.getLogger(__name__)

SECRET_KEY = "url"
#: Seconds before a namespace's user and Secret are checked again (a Redis restarted without
#: persistence forgets its ACL users).
RECHECK_AFTER = 300.0
#: Seconds before a namespace whose provisioning failed is tried again.
RETRY_AFTER = 30.0


def namespace_password(admin_url: str, namespace: str) -> str:
    secret = unquote(urlsplit(admin_url).password or "") or admin_url
    return hmac.new(secret.encode(), f"podiq-namespace:{namespace}".encode(), hashlib.sha256).hexdigest()


def namespace_secret(namespace: str, url: str) -> dict[str, Any]:
    """The namespace's Secret: its whole URL for pods and clients, and its user and password
    apart for what takes them so (KEDA's TriggerAuthentication of a pool's ScaledObject)."""
    parts = urlsplit(url)
    fields = {SECRET_KEY: url, "username": unquote(parts.username or ""), "password": unquote(parts.password or "")}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": NAMESPACE_SECRET,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "podiq", "app.kubernetes.io/component": "redis"},
        },
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in fields.items()},
    }


class NamespaceStorage:
    """What the operator does in Redis: provision namespaces, delete a deleted run's values."""

    def __init__(
        self, store: RedisStore, api_client: client.ApiClient, *, recheck_after: float = RECHECK_AFTER
    ) -> None:
        self.store = store
        self.secrets = ObjectApi(api_client, SECRETS)
        self.recheck_after = recheck_after
        self._checked: dict[str, float] = {}

    async def ensure(self, namespace: str) -> None:
        """The namespace's ACL user and Secret exist (at most one check per ``recheck_after``).

        A failure is logged, not raised: the Job still starts, and its pod reports a clear
        error only if it needs Redis (the Secret reference is optional).
        """
        checked = self._checked.get(namespace)
        if checked is not None and time.monotonic() - checked < self.recheck_after:
            return
        password = namespace_password(self.store.url, namespace)
        try:
            await self.store.set_namespace_user(namespace, password)
            url = with_credentials(self.store.url, namespace_user(namespace), password)
            await self._write_secret(namespace_secret(namespace, url))
        except (StoreError, ApiError) as exc:
            logger.warning(
                "Redis for namespace %s is not set up (tried again in %.0f s): %s", namespace, RETRY_AFTER, exc
            )
            # Not at every Job: an unreachable Redis would hold up dispatching by its timeout each time.
            self._checked[namespace] = time.monotonic() - self.recheck_after + RETRY_AFTER
            return
        self._checked[namespace] = time.monotonic()

    async def _write_secret(self, body: dict[str, Any]) -> None:
        namespace = body["metadata"]["namespace"]
        try:
            await self.secrets.create(namespace, body, decode=False)
            return
        except ConflictError:
            pass
        current = await self.secrets.get(namespace, NAMESPACE_SECRET)
        if current is None or (current.get("data") or {}) != body["data"]:
            await self.secrets.replace(namespace, NAMESPACE_SECRET, body)  # gone meanwhile: 404, tried again later

    async def forget_run(self, run: TaskRun) -> None:
        """Delete the values of a run the operator deleted; they would expire anyway."""
        try:
            await self.store.delete(run_keys(run.namespace, run.name, run.status.attempts))
        except StoreError as exc:
            logger.warning(
                "The stored values of TaskRun %s/%s stay until they expire: %s", run.namespace, run.name, exc
            )

    async def close(self) -> None:
        await self.store.close()
