"""TaskRuns over the Kubernetes API (kubernetes-asyncio): the few calls client, operator and runtime share.

Kubernetes errors are translated here, at the boundary: 404 → :class:`NotFoundError`,
409 → :class:`ConflictError`; anything else propagates as kubernetes-asyncio's ``ApiException``.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from podiq.exceptions import BrokerError
from podiq.kubernetes.connecting import JsonBody
from podiq.kubernetes.resources import GROUP, PLURAL, VERSION

__all__ = ["MERGE_PATCH", "ConflictError", "NotFoundError", "TaskRunApi", "translated"]

#: kubernetes-asyncio would pick JSON Patch for custom objects unless told otherwise.
MERGE_PATCH = "application/merge-patch+json"


class NotFoundError(BrokerError, LookupError):
    """The object does not exist (any more)."""


class ConflictError(BrokerError):
    """The object exists already, or changed since it was read (resourceVersion mismatch)."""


def translated(exc: ApiException) -> Exception:
    if exc.status == 404:
        return NotFoundError(exc.reason)
    if exc.status == 409:
        return ConflictError(exc.reason)
    return exc


class TaskRunApi:
    """TaskRun calls over one ``ApiClient``; the caller owns the client's lifetime."""

    def __init__(self, api_client: client.ApiClient, *, request_timeout: float | None = 30.0) -> None:
        self._api = client.CustomObjectsApi(api_client)
        self._timeout = request_timeout

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._api.create_namespaced_custom_object(  # type: ignore[no-any-return]  # decoded JSON is Any
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                JsonBody(body),
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            raise translated(exc) from exc

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._api.get_namespaced_custom_object(  # type: ignore[no-any-return]  # decoded JSON is Any
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, namespace: str) -> list[dict[str, Any]]:
        """Every TaskRun in ``namespace``."""
        try:
            listing = await self._api.list_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            raise translated(exc) from exc
        return list(listing["items"])

    async def patch_status(
        self,
        namespace: str,
        name: str,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Merge-patch ``status``; with ``resource_version``, only if nobody wrote in between (else 409)."""
        body = JsonBody(status=status)
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            return await self._api.patch_namespaced_custom_object_status(  # type: ignore[no-any-return,call-arg]  # decoded JSON is Any; _content_type is not in the stubs
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body,
                _content_type=MERGE_PATCH,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            raise translated(exc) from exc

    async def patch_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch ``spec`` (e.g. ``{"cancelled": True}``)."""
        try:
            return await self._api.patch_namespaced_custom_object(  # type: ignore[no-any-return,call-arg]  # decoded JSON is Any; _content_type is not in the stubs
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"spec": spec},
                _content_type=MERGE_PATCH,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            raise translated(exc) from exc

    async def delete(self, namespace: str, name: str, *, uid: str | None = None) -> None:
        """Delete; with ``uid``, only that incarnation of the name. Absent is fine."""
        options = client.V1DeleteOptions(
            propagation_policy="Background",
            preconditions=client.V1Preconditions(uid=uid) if uid else None,
        )
        try:
            await self._api.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body=options,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or a newer object under the same name
                raise
