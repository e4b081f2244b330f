"""The operator's calls to the API server, behind one small interface.

:class:`ClusterApi` is what the reconciler needs; :class:`KubernetesClusterApi` does it with
kubernetes-asyncio. Unit tests drive the reconciler with an in-memory implementation and
count its writes.
"""

from __future__ import annotations

from typing import Any, Protocol

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from podiq.kubernetes.api import ConflictError, NotFoundError, TaskRunApi, translated
from podiq.kubernetes.connecting import JsonBody

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
    def __init__(self, api_client: client.ApiClient, *, request_timeout: float = 30.0) -> None:
        # Jobs go through the generic object calls, as plain dicts: BatchV1Api would turn each
        # response into V1Job models and back, which was a fifth of the operator's CPU.
        self._objects = client.CustomObjectsApi(api_client)
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._rbac = client.RbacAuthorizationV1Api(api_client)
        self._taskruns = TaskRunApi(api_client, request_timeout=request_timeout)
        self._timeout = request_timeout

    async def create_job(self, body: dict[str, Any]) -> None:
        # The created Job is not decoded: the watch delivers it anyway.
        response = await self._objects.create_namespaced_custom_object(
            "batch",
            "v1",
            body["metadata"]["namespace"],
            "jobs",
            JsonBody(body),
            _request_timeout=self._timeout,
            _preload_content=False,
        )
        await _raise_for_status(response)

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._objects.get_namespaced_custom_object(  # type: ignore[no-any-return]  # decoded JSON is Any
                "batch",
                "v1",
                namespace,
                "jobs",
                name,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def delete_job(self, namespace: str, name: str) -> None:
        try:
            await self._batch.delete_namespaced_job(
                name,
                namespace,
                propagation_policy="Background",
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

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
        await self._create(self._core.create_namespaced_service_account, body)

    async def create_role_binding(self, body: dict[str, Any]) -> None:
        await self._create(self._rbac.create_namespaced_role_binding, body)

    async def create_event(self, body: dict[str, Any]) -> None:
        await self._create(self._core.create_namespaced_event, body)

    async def _create(self, method: Any, body: dict[str, Any]) -> None:
        """Create without decoding the answer (nothing reads it)."""
        response = await method(
            body["metadata"]["namespace"], JsonBody(body), _request_timeout=self._timeout, _preload_content=False
        )
        await _raise_for_status(response)


async def _raise_for_status(response: Any) -> None:
    """An undecoded response's error as podiq's (404, 409) or kubernetes-asyncio's exception."""
    data = await response.read()
    if not 200 <= response.status <= 299:
        exc = ApiException(status=response.status, reason=response.reason)
        exc.body = data.decode(errors="replace")
        raise translated(exc)
