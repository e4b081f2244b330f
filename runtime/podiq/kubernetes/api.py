"""The one gateway to the API server for every object podiq reads or writes: TaskRuns, TaskPools,
CronJobs, and the operator's Jobs, Deployments, Pods, Secrets and Events.

Every call goes through :class:`ObjectApi` as plain JSON (no OpenAPI models to build and take
apart), and every refusal is translated once, here, by :func:`api_error`: 404 →
:class:`NotFoundError`, 409 → :class:`ConflictError`, 410 → :class:`ExpiredError`, 400/422 →
:class:`InvalidError`, anything else → :class:`ApiError`. Each carries the HTTP status and the
API server's own message. They are kubernetes-asyncio ``ApiException`` instances too, so that a
caller's retry rule over statuses (``exc.status``) holds for both.

Connection failures (aiohttp's, timeouts) propagate as they are: they are not the server's answer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from podiq.exceptions import BrokerError
from podiq.kubernetes.connecting import JsonBody
from podiq.kubernetes.resources import GROUP, PLURAL, VERSION
from podiq.kubernetes.taskpools import POOL_PLURAL

__all__ = [
    "CRONJOBS",
    "DEPLOYMENTS",
    "EVENTS",
    "JOBS",
    "MERGE_PATCH",
    "PODS",
    "ROLE_BINDINGS",
    "SECRETS",
    "SERVICE_ACCOUNTS",
    "TASKPOOLS",
    "TASKRUNS",
    "ApiError",
    "ConflictError",
    "ExpiredError",
    "InvalidError",
    "Listing",
    "NotFoundError",
    "ObjectApi",
    "Resource",
    "TaskRunApi",
    "api_error",
]

#: A JSON merge patch: kubernetes-asyncio would otherwise pick JSON Patch for custom objects.
MERGE_PATCH = "application/merge-patch+json"


class ApiError(BrokerError, ApiException):
    """The API server refused a request: ``status`` (HTTP), ``reason`` and the server's ``message``."""

    #: The HTTP status the class stands for, when made without one (an in-memory cluster's refusal).
    default_status = 500

    def __init__(
        self, reason: str = "", *, status: int | None = None, message: str = "", body: bytes | None = None
    ) -> None:
        ApiException.__init__(self, status=self.default_status if status is None else status, reason=reason)
        self.body = body
        self.message = message or reason

    def __str__(self) -> str:
        return (
            f"{self.status} {self.reason}: {self.message}"
            if self.message != self.reason
            else f"{self.status} {self.reason}"
        )


class NotFoundError(ApiError, LookupError):
    """The object (or its namespace, or its kind) does not exist (any more)."""

    default_status = 404


class ConflictError(ApiError):
    """The object exists already, or changed since it was read (uid or resourceVersion mismatch)."""

    default_status = 409


class ExpiredError(ApiError):
    """410 Gone: the resourceVersion a watch or a listing continued from is too old; list again."""

    default_status = 410


class InvalidError(ApiError):
    """400 or 422: the object or the request is invalid; sending it again is refused again."""

    default_status = 422


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidError,
    404: NotFoundError,
    409: ConflictError,
    410: ExpiredError,
    422: InvalidError,
}


def api_error(status: int, reason: str | None, body: str | bytes | None = None) -> ApiError:
    """The one translation of an API server's refusal into podiq's exception, with the server's words."""
    raw = body.encode() if isinstance(body, str) else body
    text = raw.decode(errors="replace") if raw is not None else ""
    message = ""
    try:
        decoded = json.loads(text)
        if isinstance(decoded, dict):
            message = str(decoded.get("message") or "")
    except ValueError:  # not a Status object (a proxy's page, say): its reason says enough
        pass
    return _BY_STATUS.get(status, ApiError)(reason or "", status=status, message=message, body=raw)


@dataclasses.dataclass(frozen=True)
class Resource:
    """A kind's REST collection: ``group`` empty for the core API."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{base}/namespaces/{namespace}/{self.plural}" if namespace else f"{base}/{self.plural}"
        if name is not None:
            path += f"/{name}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


TASKRUNS = Resource(GROUP, VERSION, PLURAL)
TASKPOOLS = Resource(GROUP, VERSION, POOL_PLURAL)
CRONJOBS = Resource("batch", "v1", "cronjobs")
JOBS = Resource("batch", "v1", "jobs")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
PODS = Resource("", "v1", "pods")
SECRETS = Resource("", "v1", "secrets")
EVENTS = Resource("", "v1", "events")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings")


@dataclasses.dataclass
class Listing:
    """A (whole or first-page) listing: the items and the resourceVersion to watch from."""

    items: list[dict[str, Any]]
    resource_version: str


class ObjectApi:
    """Get, list, watch, create, replace, patch and delete one kind's objects over one ``ApiClient``.

    The caller owns the client's lifetime. ``request_timeout`` bounds each request but a
    watch, which is bounded by its own ``timeout_seconds``.
    """

    def __init__(
        self, api_client: client.ApiClient, resource: Resource, *, request_timeout: float | None = 30.0
    ) -> None:
        self.api_client = api_client
        self.resource = resource
        self.request_timeout = request_timeout

    def __repr__(self) -> str:
        return f"<ObjectApi {self.resource.path(None)}>"

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        """The undecoded response (aiohttp's) of a successful request; an :class:`ApiError` otherwise."""
        response = await self.api_client.call_api(
            path,
            method,
            query_params=[(k, v) for k, v in (query or {}).items() if v is not None],
            header_params={"Accept": accept, "Content-Type": content_type},
            body=JsonBody(body) if body is not None else None,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout if timeout is not None else self.request_timeout,
        )
        if not 200 <= response.status <= 299:
            data = await response.read()
            response.release()
            raise api_error(response.status, response.reason, data)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.request(method, path, **kwargs)
        try:
            decoded: dict[str, Any] = json.loads(await response.read())
        finally:
            response.release()
        return decoded

    async def get(self, namespace: str, name: str, *, resource_version: str | None = None) -> dict[str, Any] | None:
        """The object, or None if there is none of that name. With ``resource_version``, at that
        version or newer, from the API server's watch cache (no read from etcd); when the cache does
        not get there within the server's wait, it answers 504 (an :class:`ApiError`)."""
        try:
            return await self._json(
                "GET", self.resource.path(namespace, name), query={"resourceVersion": resource_version}
            )
        except NotFoundError:
            return None

    async def text(self, namespace: str, name: str, subresource: str) -> str | None:
        """A subresource that answers in plain text (a pod's ``log``), or None if there is no such object."""
        try:
            response = await self.request("GET", self.resource.path(namespace, name, subresource), accept="*/*")
        except NotFoundError:
            return None
        try:
            data: bytes = await response.read()
        finally:
            response.release()
        return data.decode(errors="replace")

    async def pages(
        self,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int | None = 500,
        timeout: float | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The listing page by page (each with its ``metadata.resourceVersion``); 410 while paging
        raises :class:`ExpiredError`."""
        token: str | None = None
        while True:
            page = await self._json(
                "GET",
                self.resource.path(namespace),
                query={
                    "labelSelector": label_selector,
                    "fieldSelector": field_selector,
                    "limit": page_size,
                    "continue": token,
                },
                timeout=timeout,
            )
            yield page
            token = page.get("metadata", {}).get("continue")
            if not token:
                return

    async def list(
        self,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> Listing:
        """Every matching object (all pages), or only the first ``limit`` with ``limit``."""
        items: list[dict[str, Any]] = []
        version = ""
        async for page in self.pages(
            namespace, label_selector=label_selector, field_selector=field_selector, page_size=limit or 500
        ):
            items += page.get("items") or ()
            version = str(page.get("metadata", {}).get("resourceVersion", ""))
            if limit is not None:
                break
        return Listing(items, version)

    async def watch(
        self,
        namespace: str | None,
        resource_version: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """``(type, object)`` of each change after ``resource_version`` until the server ends the request
        (BOOKMARKs included: they only move the resourceVersion). 410 raises :class:`ExpiredError`."""
        response = await self.request(
            "GET",
            self.resource.path(namespace),
            query={
                "watch": "true",
                "resourceVersion": resource_version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": timeout_seconds,
                "labelSelector": label_selector,
                "fieldSelector": field_selector,
            },
            # A connection that goes silent (a server that hangs, a dropped route) ends too.
            timeout=timeout_seconds + (self.request_timeout or 30.0),
        )
        async with response:
            async for line in lines(response.content):
                event = json.loads(line)
                kind, body = str(event.get("type")), event.get("object") or {}
                if kind == "ERROR":
                    raise api_error(int(body.get("code") or 500), body.get("reason"), json.dumps(body))
                yield kind, body

    async def create(self, namespace: str, body: dict[str, Any], *, decode: bool = True) -> dict[str, Any] | None:
        """Create; :class:`ConflictError` if the name is taken. ``decode=False`` skips reading the answer."""
        path = self.resource.path(namespace)
        if decode:
            return await self._json("POST", path, body=body)
        (await self.request("POST", path, body=body)).release()
        return None

    async def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace; :class:`ConflictError` if ``metadata.resourceVersion`` is not the current one."""
        return await self._json("PUT", self.resource.path(namespace, name), body=body)

    async def patch(
        self, namespace: str, name: str, body: dict[str, Any], *, subresource: str | None = None
    ) -> dict[str, Any]:
        """A JSON merge patch; ``metadata.resourceVersion`` in it makes it conditional (else 409)."""
        return await self._json(
            "PATCH", self.resource.path(namespace, name, subresource), body=body, content_type=MERGE_PATCH
        )

    async def delete(
        self, namespace: str, name: str, *, uid: str | None = None, resource_version: str | None = None
    ) -> bool:
        """Delete (its dependents in the background); with ``uid``/``resource_version``, only that
        incarnation as read. False if it was gone or is no longer the object meant."""
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if preconditions:
            body["preconditions"] = preconditions
        try:
            (await self.request("DELETE", self.resource.path(namespace, name), body=body)).release()
        except (NotFoundError, ConflictError):  # gone, or a newer object under the same name
            return False
        return True


class TaskRunApi(ObjectApi):
    """TaskRuns: the gateway with the calls client, operator and runtime share."""

    def __init__(self, api_client: client.ApiClient, *, request_timeout: float | None = 30.0) -> None:
        super().__init__(api_client, TASKRUNS, request_timeout=request_timeout)

    async def create(self, namespace: str, body: dict[str, Any], *, decode: bool = True) -> dict[str, Any]:
        created = await super().create(namespace, body)
        assert created is not None, "decoded"
        return created

    async def patch_status(
        self,
        namespace: str,
        name: str,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Merge-patch ``status``; with ``resource_version``, only if nobody wrote in between (else 409)."""
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self.patch(namespace, name, body, subresource="status")

    async def patch_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch ``spec`` (e.g. ``{"cancelled": True}``)."""
        return await self.patch(namespace, name, {"spec": spec})


async def lines(stream: Any) -> AsyncIterator[bytes]:
    """Newline-separated watch events of any length (aiohttp's readline refuses lines over 128 KiB)."""
    buffer = b""
    async for chunk in stream.iter_any():
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer
