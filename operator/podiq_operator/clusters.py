"""The operator's calls to the API server, behind one small interface.

:class:`ClusterApi` is what the reconciler needs; :class:`KubernetesClusterApi` does it with
kubernetes-asyncio. Unit tests drive the reconciler with an in-memory implementation and
count its writes.
"""

from __future__ import annotations

from typing import Any, Protocol

from kubernetes_asyncio import client

from podiq.kubernetes.api import (
    EVENTS,
    JOBS,
    ROLE_BINDINGS,
    SERVICE_ACCOUNTS,
    ConflictError,
    NotFoundError,
    ObjectApi,
    Resource,
    TaskRunApi,
)

__all__ = ["ClusterApi", "ConflictError", "KubernetesClusterApi", "NotFoundError"]


class ClusterApi(Protocol):
    async def create_job(self, body: dict[str, Any]) -> None:
        """Create a Job; :class:`ConflictError` if one of that name exists."""

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and (in the background) its pods; absent is fine."""

    async def get_taskrun(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def patch_taskrun_status(
        self,
        namespace: str,
        name: str,
        status: dict[str, Any],
        resource_version: str | None,
    ) -> dict[str, Any]:
        """Merge-patch the status; :class:`ConflictError` if the resourceVersion moved."""

    async def delete_taskrun(self, namespace: str, name: str, uid: str | None) -> None: ...

    async def create_service_account(self, body: dict[str, Any]) -> None:
        """Create; :class:`ConflictError` if it exists."""

    async def create_role_binding(self, body: dict[str, Any]) -> None:
        """Create; :class:`ConflictError` if it exists."""

    async def create_event(self, body: dict[str, Any]) -> None:
        """Post a core/v1 Event."""


class KubernetesClusterApi:
    """:class:`ClusterApi` over podiq's gateway: plain JSON both ways (decoding Jobs into V1Job models
    and back was a fifth of the operator's CPU), errors translated once."""

    def __init__(self, api_client: client.ApiClient, *, request_timeout: float = 30.0) -> None:
        def objects(resource: Resource) -> ObjectApi:
            return ObjectApi(api_client, resource, request_timeout=request_timeout)

        self._jobs = objects(JOBS)
        self._service_accounts = objects(SERVICE_ACCOUNTS)
        self._role_bindings = objects(ROLE_BINDINGS)
        self._events = objects(EVENTS)
        self._taskruns = TaskRunApi(api_client, request_timeout=request_timeout)

    async def create_job(self, body: dict[str, Any]) -> None:
        # The created Job is not decoded: the watch delivers it anyway.
        await self._jobs.create(body["metadata"]["namespace"], body, decode=False)

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._jobs.get(namespace, name)

    async def delete_job(self, namespace: str, name: str) -> None:
        await self._jobs.delete(namespace, name)

    async def get_taskrun(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._taskruns.get(namespace, name)

    async def patch_taskrun_status(
        self,
        namespace: str,
        name: str,
        status: dict[str, Any],
        resource_version: str | None,
    ) -> dict[str, Any]:
        return await self._taskruns.patch_status(namespace, name, status, resource_version=resource_version)

    async def delete_taskrun(self, namespace: str, name: str, uid: str | None) -> None:
        await self._taskruns.delete(namespace, name, uid=uid)

    async def create_service_account(self, body: dict[str, Any]) -> None:
        await self._service_accounts.create(body["metadata"]["namespace"], body, decode=False)

    async def create_role_binding(self, body: dict[str, Any]) -> None:
        await self._role_bindings.create(body["metadata"]["namespace"], body, decode=False)

    async def create_event(self, body: dict[str, Any]) -> None:
        await self._events.create(body["metadata"]["namespace"], body, decode=False)
