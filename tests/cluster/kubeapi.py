"""A thin dict-in, dict-out layer over kubernetes_asyncio's ApiClient.

The node agent works with the API's own JSON (camelCase, as ``kubectl get -o
json`` shows it) rather than generated models: it patches status fragments,
reads arbitrary fields by path and streams watches, which is simpler on dicts.
kubernetes_asyncio still does the kubeconfig parsing and TLS client setup.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

__all__ = ["ApiException", "KubeApi"]

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


class KubeApi:
    def __init__(self, api_client: client.ApiClient) -> None:
        self._client = api_client

    @classmethod
    async def from_kubeconfig(cls, path: str) -> KubeApi:
        cfg = client.Configuration()
        await config.load_kube_config(config_file=path, client_configuration=cfg)
        return cls(client.ApiClient(configuration=cfg))

    async def close(self) -> None:
        await self._client.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> dict:
        resp = await self._raw(method, path, query=query, body=body, content_type=content_type, timeout=timeout)
        try:
            data = await resp.read()
        finally:
            resp.release()
        return json.loads(data) if data else {}

    async def _raw(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ):
        params = [(k, _qv(v)) for k, v in (query or {}).items() if v is not None]
        headers = {"Accept": "application/json", "Content-Type": content_type}
        resp = await self._client.call_api(
            path,
            method,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout,
        )
        if resp.status >= 400:
            text = (await resp.read()).decode(errors="replace")
            resp.release()
            raise ApiException(status=resp.status, reason=text[:500])
        return resp

    async def get(self, path: str, **query: Any) -> dict:
        return await self.request("GET", path, query=query)

    async def watch(
        self, path: str, *, resource_version: str, timeout_seconds: int = 50, **query: Any
    ) -> AsyncIterator[dict]:
        """Yield watch events (``{"type": ..., "object": {...}}``) until the server closes."""
        q = dict(
            query,
            watch="true",
            resourceVersion=resource_version,
            timeoutSeconds=timeout_seconds,
            allowWatchBookmarks="true",
        )
        resp = await self._raw("GET", path, query=q, timeout=timeout_seconds + 15)
        buf = b""
        try:
            # Read raw chunks and split lines ourselves: pod objects can exceed
            # aiohttp's default readline limit.
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            resp.release()


def _qv(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
