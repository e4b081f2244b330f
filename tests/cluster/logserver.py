"""The kubelet-like HTTPS endpoint the API server proxies ``kubectl logs`` to.

Only ``GET /containerLogs/{namespace}/{pod}/{container}`` (with ``follow``,
``tailLines``, ``limitBytes`` and ``previous``) and ``/healthz``.  The API server
authenticates with its kubelet client certificate, which must be signed by
the cluster CA.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .node import NodeAgent

# A follow stream ends on its own after this long, so nothing waits forever.
_MAX_FOLLOW_SECONDS = 3600


def _tail(data: bytes, lines: int) -> bytes:
    if lines <= 0:
        return b""
    parts = data.split(b"\n")
    trailing = parts[-1] == b""
    if trailing:
        parts = parts[:-1]
    out = b"\n".join(parts[-lines:])
    return out + (b"\n" if trailing and out else b"")


class LogServer:
    def __init__(self, agent: NodeAgent, port: int, cert: Path, key: Path, ca: Path) -> None:
        self.agent = agent
        self.port = port
        self.ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
        self.ssl.load_cert_chain(str(cert), str(key))
        self.ssl.verify_mode = ssl.CERT_REQUIRED
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self._logs)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.ssl).start()

    async def close(self) -> None:
        await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, name = (request.match_info[k] for k in ("ns", "pod", "container"))
        runner = self.agent.runner_by_name(ns, pod)
        if runner is None:
            raise web.HTTPNotFound(text=f"pod {ns}/{pod} is not known to node {self.agent.name}")
        container = runner.container(name)
        if container is None:
            raise web.HTTPNotFound(text=f"container {name!r} not found in pod {ns}/{pod}")
        q = request.query
        previous = q.get("previous") == "true"
        if previous:
            if len(container.logs) < 2:
                raise web.HTTPBadRequest(text=f"previous terminated container {name!r} in pod {pod!r} not found")
            path = container.logs[-2]
        elif container.logs:
            path = container.logs[-1]
        else:
            raise web.HTTPBadRequest(text=f"container {name!r} in pod {pod!r} is waiting to start")
        data = path.read_bytes()
        if "tailLines" in q:
            data = _tail(data, int(q["tailLines"]))
        limit = int(q["limitBytes"]) if "limitBytes" in q else None
        if limit is not None:
            data = data[:limit]
        follow = q.get("follow") == "true" and not previous
        if not follow:
            return web.Response(body=data, content_type="text/plain")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(data)
        sent = len(data)
        offset = path.stat().st_size
        deadline = time.monotonic() + _MAX_FOLLOW_SECONDS
        with path.open("rb") as fh:
            fh.seek(offset)
            while time.monotonic() < deadline and (limit is None or sent < limit):
                chunk = fh.read(65536)
                if chunk:
                    if limit is not None:
                        chunk = chunk[: limit - sent]
                    await resp.write(chunk)
                    sent += len(chunk)
                    continue
                # Done once this log file can get no more output: the container
                # moved on to a new run or finished for good.
                if container.logs[-1] != path or container.proc is None:
                    break
                await asyncio.sleep(0.2)
        await resp.write_eof()
        return resp
