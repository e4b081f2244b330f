"""Running one pod's containers as local processes, the way a kubelet would.

What a container gets:
- its ``command`` + ``args`` (with ``$(VAR)`` expansion), run directly; the image
  is recorded in the status but never pulled, so a container without a command
  fails with reason ``ContainerCannotRun``;
- its env (values, fieldRef, configMapKeyRef, secretKeyRef, envFrom) on top of a
  small base environment (PATH with the test interpreter first, HOME, LANG, the
  agent's PYTHONPATH, KUBERNETES_SERVICE_HOST/PORT, HOSTNAME);
- its volume mounts (emptyDir, configMap, secret, projected service-account
  token, downwardAPI) bind-mounted at their mountPath inside a private mount
  namespace made with ``unshare``, so in-cluster config finds
  /var/run/secrets/kubernetes.io/serviceaccount as usual;
- stdout+stderr in a log file per container and restart, served by logserver.py.

Not done: image pulls, cgroups/resource limits, user/securityContext
enforcement, probes (a running container counts as ready), ports.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import datetime as dt
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp

from .kubeapi import STRATEGIC, ApiException

if TYPE_CHECKING:
    from .node import NodeAgent

log = logging.getLogger("podiq.node")

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
TERMINAL = ("Succeeded", "Failed")

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_agent() -> None:
    # Runs in the child between fork and exec: if the agent dies hard, the
    # kernel kills the pod process instead of leaving it orphaned.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: Seconds between tries of a call the node makes for a pod while the API server is away
#: (restarting, say, or etcd under it): a kubelet keeps trying rather than failing the pod.
#: About two minutes in all, long past an API server's restart; after that the pod fails
#: with the error, so an API server that never comes back still ends every pod.
API_BACKOFF = (0.5, 1, 2, 4, 8, 8, 8, 8, 8, 8, 16, 16, 16, 16)

#: A token request refused with 403 is tried again for about as long: the Node authorizer
#: learns of a pod's binding from its own watch, which after an API server restart starts
#: from a full list, so it may refuse a token for a pod bound moments before.
TOKEN_BACKOFF = (0.2, 0.4, 0.6, 0.8, 1, 1, 2, 2, 4, 4, 8, 8, 8, 8, 16, 16, 16, 16)

T = TypeVar("T")


def unavailable(exc: BaseException) -> bool:
    """True if ``exc`` says the API server is away or overloaded, not that the call is wrong."""
    if isinstance(exc, ApiException):
        return exc.status >= 500 or exc.status == 429
    # aiohttp's connection errors: refused and reset connections are OSErrors, a connection
    # the server dropped mid-request (ServerDisconnectedError) is only a ClientError.
    return isinstance(exc, OSError | TimeoutError | aiohttp.ClientError)


async def retried(call: Callable[[], Awaitable[T]], what: str, backoff: tuple[float, ...] = API_BACKOFF) -> T:
    """``call()``, tried again after each delay of ``backoff`` while the API server is unavailable;
    the last failure (or any other error) is raised."""
    for delay in (*backoff, None):
        try:
            return await call()
        except Exception as exc:
            if delay is None or not unavailable(exc):
                raise
            log.info("%s failed (%s: %s); trying again in %s s", what, type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


class PodSetupError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Container:
    spec: dict
    init: bool = False
    restart_count: int = 0
    state: dict = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec["name"]

    def status(self, pod_uid: str) -> dict:
        running = "running" in self.state
        return {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "containerID": f"podiq://{pod_uid}/{self.name}",
            "restartCount": self.restart_count,
            "ready": running,
            "started": running,
            "state": self.state,
            "lastState": self.last_state,
        }


class PodRunner:
    def __init__(self, agent: NodeAgent, pod: dict) -> None:
        self.agent = agent
        self.pod = pod
        meta = pod["metadata"]
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = agent.state_dir / "pods" / f"{self.ns}_{self.name}_{self.uid}"
        spec = pod["spec"]
        self.restart_policy = spec.get("restartPolicy", "Always")
        self.init_containers = [Container(c, init=True) for c in spec.get("initContainers") or []]
        self.containers = [Container(c) for c in spec.get("containers") or []]
        self.mounts: dict[str, Path] = {}  # volume name -> host dir
        self.stopping = False
        self.stop_grace = 30.0
        self.phase = "Pending"
        self.reason: str | None = None
        self.message: str | None = None
        self.started_at = now()
        self.conditions: dict[str, dict] = {}
        self.task: asyncio.Task | None = None
        self._status_lock = asyncio.Lock()

    # -- public ----------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"pod {self.ns}/{self.name}")

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    def container(self, name: str) -> Container | None:
        for c in self.init_containers + self.containers:
            if c.name == name:
                return c
        return None

    async def stop(self, grace: float) -> None:
        """Kill the pod's processes: SIGTERM, then SIGKILL after ``grace`` seconds."""
        self.stopping = True
        self.stop_grace = max(0.0, grace)
        for c in self.init_containers + self.containers:
            self._signal(c, signal.SIGTERM)
        if self.task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout=self.stop_grace)
        except TimeoutError:
            for c in self.init_containers + self.containers:
                self._signal(c, signal.SIGKILL)
            try:
                await asyncio.wait_for(asyncio.shield(self.task), timeout=10)
            except TimeoutError:
                log.error("pod %s/%s did not stop after SIGKILL", self.ns, self.name)
                self.task.cancel()

    # -- lifecycle -------------------------------------------------------

    async def _run(self) -> None:
        try:
            # PodScheduled is the scheduler's; the node owns the conditions below.
            await self._push_status()
            try:
                await self._prepare()
            except PodSetupError as exc:
                await self._fail(exc.reason, exc.message)
                return
            self._set_condition("PodReadyToStartContainers", True)
            for c in self.init_containers:
                ok = await self._run_container(c)
                if not ok:
                    await self._finish()
                    return
            self._set_condition("Initialized", True)
            await asyncio.gather(*(self._run_container(c) for c in self.containers))
            await self._finish()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("pod %s/%s failed in the node agent", self.ns, self.name)
            await self._fail("NodeAgentError", f"{type(exc).__name__}: {exc}")

    async def _fail(self, reason: str, message: str) -> None:
        for c in self.init_containers + self.containers:
            if "terminated" not in c.state:
                c.state = {
                    "terminated": {
                        "exitCode": 128,
                        "reason": reason,
                        "message": message,
                        "startedAt": None,
                        "finishedAt": now(),
                    }
                }
        self.reason, self.message = reason, message
        await self._finish(force_phase="Failed")

    async def _finish(self, force_phase: str | None = None) -> None:
        codes = [c.state.get("terminated", {}).get("exitCode", 1) for c in self.init_containers + self.containers]
        self.phase = force_phase or ("Succeeded" if all(code == 0 for code in codes) else "Failed")
        for cond in ("Ready", "ContainersReady"):
            self._set_condition(cond, False, "PodCompleted")
        await self._push_status()

    async def _run_container(self, c: Container) -> bool:
        """Run ``c`` until it is done for good; True if its last run exited 0."""
        backoff = 1.0
        while True:
            code = await self._run_once(c)
            restart = (
                not self.stopping
                and not c.state["terminated"].get("reason") == "ContainerCannotRun"
                and (
                    self.restart_policy == "Always"
                    and not c.init
                    or self.restart_policy in ("Always", "OnFailure")
                    and code != 0
                )
            )
            if not restart:
                await self._push_status()
                return code == 0
            # Crash-loop backoff, short so tests do not wait: 1s, 2s, 4s ... 30s.
            c.last_state, c.state = c.state, {"waiting": {"reason": "CrashLoopBackOff"}}
            c.restart_count += 1
            await self._push_status()
            deadline = time.monotonic() + backoff
            while time.monotonic() < deadline and not self.stopping:
                await asyncio.sleep(0.1)
            backoff = min(backoff * 2, 30.0)
            if self.stopping:
                c.state = c.last_state
                return False

    async def _run_once(self, c: Container) -> int:
        spec = c.spec
        if self.stopping:  # deleted before this container got to start
            c.state = {
                "terminated": {
                    "exitCode": 137,
                    "reason": "ContainerStatusUnknown",
                    "finishedAt": now(),
                    "message": "the pod was deleted before the container started",
                }
            }
            return 137
        if not spec.get("command"):
            c.state = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "ContainerCannotRun",
                    "finishedAt": now(),
                    "message": f"container {c.name!r} has no command: the podiq test node runs commands "
                    f"as local processes and cannot use image {spec.get('image')!r}'s entrypoint",
                }
            }
            return 128
        env = await self._env(spec)
        argv = [_expand(a, env) for a in list(spec["command"]) + list(spec.get("args") or [])]
        logdir = self.dir / "logs" / c.name
        logdir.mkdir(parents=True, exist_ok=True)
        logfile = logdir / f"{c.restart_count}.log"
        cwd = spec.get("workingDir") or str(self.dir / "root")
        mounts = self._container_mounts(spec)
        argv = self.agent.mounter.wrap(argv, mounts, self.dir / "kept")
        started = now()
        try:
            Path(cwd).mkdir(parents=True, exist_ok=True)
            with logfile.open("ab") as out:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,
                    preexec_fn=_die_with_agent,
                )
        except OSError as exc:
            c.state = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": str(exc),
                    "startedAt": started,
                    "finishedAt": now(),
                }
            }
            return 128
        c.proc = proc
        c.logs.append(logfile)  # after c.proc is set: a log follower stops when proc is None
        pgid_file = self.dir / "pgids" / str(proc.pid)
        pgid_file.parent.mkdir(parents=True, exist_ok=True)
        pgid_file.touch()
        c.state = {"running": {"startedAt": started}}
        if self.stopping:  # deletion raced with the start
            self._signal(c, signal.SIGTERM)
        self._refresh_ready()
        if self.phase == "Pending":
            self.phase = "Running"
        await self._push_status()
        rc = await proc.wait()
        # Like a container runtime tearing down the container's cgroup: whatever
        # the main process left behind in its group goes too.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        pgid_file.unlink(missing_ok=True)
        c.proc = None
        code = rc if rc >= 0 else 128 - rc
        c.state = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": now(),
                "containerID": f"podiq://{self.uid}/{c.name}",
            }
        }
        self._refresh_ready()
        log.info("pod %s/%s container %s exited %s", self.ns, self.name, c.name, code)
        return code

    def _signal(self, c: Container, sig: int) -> None:
        if c.proc is not None and c.proc.returncode is None:
            try:
                os.killpg(c.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    # -- status ----------------------------------------------------------

    def _set_condition(self, kind: str, ok: bool, reason: str | None = None) -> None:
        old = self.conditions.get(kind)
        status = "True" if ok else "False"
        if old and old["status"] == status and old.get("reason") == reason:
            return
        changed = not old or old["status"] != status
        cond = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": now() if changed else old["lastTransitionTime"],
        }
        if reason:
            cond["reason"] = reason
        self.conditions[kind] = cond

    def _refresh_ready(self) -> None:
        ready = all("running" in c.state for c in self.containers)
        reason = None if ready else "ContainersNotReady"
        self._set_condition("ContainersReady", ready, reason)
        self._set_condition("Ready", ready, reason)

    async def _push_status(self) -> None:
        async with self._status_lock:
            status: dict[str, Any] = {
                "phase": self.phase,
                "hostIP": "127.0.0.1",
                "hostIPs": [{"ip": "127.0.0.1"}],
                "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}],
                "startTime": self.started_at,
                "conditions": list(self.conditions.values()),
                "containerStatuses": [c.status(self.uid) for c in self.containers],
                "qosClass": self.pod.get("status", {}).get("qosClass"),
            }
            if self.init_containers:
                status["initContainerStatuses"] = [c.status(self.uid) for c in self.init_containers]
            if self.reason:
                status["reason"], status["message"] = self.reason, self.message
            body = {"metadata": {"uid": self.uid}, "status": status}
            # As a kubelet does, keep trying while the API server is away (restarting, say),
            # so that a pod's status is never left behind for good.
            path = f"/api/v1/namespaces/{self.ns}/pods/{self.name}/status"
            try:
                await retried(
                    lambda: self.agent.api.request("PATCH", path, body=body, content_type=STRATEGIC),
                    f"status update of {self.ns}/{self.name}",
                )
            except ApiException as exc:
                if exc.status not in (404, 409):  # the pod is gone, or a newer one has its name
                    log.warning("status update of %s/%s failed: %s", self.ns, self.name, exc.reason)
            except Exception as exc:  # noqa: BLE001 - the next change of the pod pushes its status again
                log.warning("status update of %s/%s failed: %s", self.ns, self.name, exc)

    # -- environment -----------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        env = {
            "PATH": f"{self.agent.shim_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/root"),
            "HOSTNAME": self.name,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.agent.api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.agent.api_port),
            "KUBERNETES_PORT": f"tcp://127.0.0.1:{self.agent.api_port}",
        }
        for key in ("LANG", "LC_ALL", "TZ", "PYTHONPATH", "SSL_CERT_FILE"):
            if key in os.environ:
                env[key] = os.environ[key]
        return env

    async def _env(self, spec: dict) -> dict[str, str]:
        env = self._base_env()
        for src in spec.get("envFrom") or []:
            prefix = src.get("prefix", "")
            if "configMapRef" in src:
                data = await self._object_data(
                    "configmaps", src["configMapRef"]["name"], src["configMapRef"].get("optional", False)
                )
            else:
                data = await self._object_data(
                    "secrets", src["secretRef"]["name"], src["secretRef"].get("optional", False)
                )
            env.update({prefix + k: v.decode(errors="replace") for k, v in data.items()})
        for item in spec.get("env") or []:
            name = item["name"]
            if "valueFrom" not in item:
                env[name] = _expand(item.get("value", ""), env)
                continue
            src = item["valueFrom"]
            if "fieldRef" in src:
                env[name] = self._field(src["fieldRef"]["fieldPath"])
            elif "configMapKeyRef" in src or "secretKeyRef" in src:
                kind, ref = (
                    ("configmaps", src["configMapKeyRef"])
                    if "configMapKeyRef" in src
                    else ("secrets", src["secretKeyRef"])
                )
                data = await self._object_data(kind, ref["name"], ref.get("optional", False))
                if ref["key"] in data:
                    env[name] = data[ref["key"]].decode(errors="replace")
                elif not ref.get("optional"):
                    raise PodSetupError(
                        "CreateContainerConfigError", f"key {ref['key']!r} not found in {kind[:-1]} {ref['name']!r}"
                    )
            # resourceFieldRef is not supported: there are no resource limits here.
        return env

    def _field(self, path: str) -> str:
        meta = self.pod["metadata"]
        simple = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": self.agent.name,
            "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", "default"),
            "status.podIP": "127.0.0.1",
            "status.podIPs": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
            "status.hostIPs": "127.0.0.1",
        }
        if path in simple:
            return simple[path]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if m:
            return (meta.get(m.group(1)) or {}).get(m.group(2), "")
        raise PodSetupError("CreateContainerConfigError", f"unsupported fieldRef {path!r}")

    async def _object_data(self, kind: str, name: str, optional: bool) -> dict[str, bytes]:
        """A configmap's or secret's data as bytes; {} if optional and missing."""
        path = f"/api/v1/namespaces/{self.ns}/{kind}/{name}"
        try:
            obj = await retried(lambda: self.agent.api.get(path), f"reading {kind[:-1]} {self.ns}/{name}")
        except ApiException as exc:
            if exc.status == 404 and optional:
                return {}
            raise PodSetupError("CreateContainerConfigError", f"{kind[:-1]} {name!r}: {exc.status}") from exc
        except Exception as exc:  # the API server stayed away: the pod fails, saying why
            raise PodSetupError(
                "CreateContainerConfigError", f"{kind[:-1]} {name!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if kind == "secrets":
            return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        out = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return out

    # -- volumes ---------------------------------------------------------

    async def _prepare(self) -> None:
        (self.dir / "root").mkdir(parents=True, exist_ok=True)
        for vol in self.pod["spec"].get("volumes") or []:
            host = self.dir / "volumes" / vol["name"]
            host.mkdir(parents=True, exist_ok=True)
            if "emptyDir" in vol:
                pass
            elif "configMap" in vol or "secret" in vol:
                kind, src = ("configmaps", vol["configMap"]) if "configMap" in vol else ("secrets", vol["secret"])
                name = src.get("name") or src.get("secretName")
                data = await self._object_data(kind, name, src.get("optional", False))
                _write_items(host, data, src.get("items"))
            elif "projected" in vol:
                await self._projected(host, vol["projected"])
            elif "downwardAPI" in vol:
                for item in vol["downwardAPI"].get("items") or []:
                    _write_file(host / item["path"], self._field(item["fieldRef"]["fieldPath"]).encode())
            elif "hostPath" in vol:
                host = Path(vol["hostPath"]["path"])
            else:
                kinds = sorted(k for k in vol if k != "name")
                raise PodSetupError(
                    "VolumeNotSupported",
                    f"volume {vol['name']!r} of type {kinds} is not supported by the podiq test node",
                )
            self.mounts[vol["name"]] = host

    async def _projected(self, host: Path, spec: dict) -> None:
        for src in spec.get("sources") or []:
            if "serviceAccountToken" in src:
                tok = src["serviceAccountToken"]
                _write_file(host / tok["path"], (await self._token(tok)).encode())
            elif "configMap" in src or "secret" in src:
                kind, ref = ("configmaps", src["configMap"]) if "configMap" in src else ("secrets", src["secret"])
                data = await self._root_ca_aware(kind, ref)
                _write_items(host, data, ref.get("items"))
            elif "downwardAPI" in src:
                for item in src["downwardAPI"].get("items") or []:
                    _write_file(host / item["path"], self._field(item["fieldRef"]["fieldPath"]).encode())

    async def _root_ca_aware(self, kind: str, ref: dict) -> dict[str, bytes]:
        # kube-root-ca.crt is published by the controller manager shortly after a
        # namespace appears; wait briefly for it, like a kubelet retrying the mount.
        for _ in range(50):
            try:
                return await self._object_data(kind, ref["name"], ref.get("optional", False))
            except PodSetupError:
                if ref["name"] != "kube-root-ca.crt":
                    raise
                await asyncio.sleep(0.2)
        return {"ca.crt": self.agent.ca_path.read_bytes()}

    async def _token(self, src: dict) -> str:
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [src["audience"]] if src.get("audience") else [],
                "expirationSeconds": int(src.get("expirationSeconds", 3607)),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid},
            },
        }
        path = f"/api/v1/namespaces/{self.ns}/serviceaccounts/{sa}/token"
        what = f"token request for service account {self.ns}/{sa}"

        async def request() -> dict:
            return await retried(lambda: self.agent.api.request("POST", path, body=body), what)

        # The Node authorizer learns of a pod's binding from its own watch; under load (or
        # just after an API server restart) a token request can arrive first and be refused.
        for delay in (*TOKEN_BACKOFF, None):
            try:
                resp = await request()
                return resp["status"]["token"]
            except ApiException as exc:
                if exc.status != 403 or delay is None:
                    raise PodSetupError(
                        "FailedMount", f"token request for service account {sa!r}: {exc.status} {exc.reason}"
                    ) from exc
                await asyncio.sleep(delay)
            except Exception as exc:  # the API server stayed away: the pod fails, saying why
                raise PodSetupError(
                    "FailedMount", f"token request for service account {sa!r}: {type(exc).__name__}: {exc}"
                ) from exc
        raise AssertionError("unreachable")

    def _container_mounts(self, spec: dict) -> list[tuple[Path, str, bool]]:
        out = []
        for m in spec.get("volumeMounts") or []:
            host = self.mounts.get(m["name"])
            if host is None:
                continue
            if m.get("subPath"):
                host = host / m["subPath"]
                if not host.exists():
                    host.mkdir(parents=True)
            out.append((host, m["mountPath"], bool(m.get("readOnly"))))
        return out


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_items(host: Path, data: dict[str, bytes], items: list[dict] | None) -> None:
    if items:
        for item in items:
            if item["key"] in data:
                _write_file(host / item["path"], data[item["key"]])
    else:
        for key, value in data.items():
            _write_file(host / key, value)


_VAR = re.compile(r"\$\((\w+)\)|\$\$")


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known vars replaced, unknown kept, $$ escapes."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


class Mounter:
    """Puts a process into its own mount namespace with the pod's bind mounts.

    ``unshare --mount --propagation private`` keeps the mounts invisible to
    the host; a short sh script binds each volume and then execs the command,
    so the command keeps the pid the agent tracks.  Mount points are created on
    the host first (an empty directory, or an empty file for file mounts).
    """

    SCRIPT = (
        'set -e; while [ "$1" != -- ]; do mount --bind "$1" "$2"; '
        'if [ "$3" = ro ]; then mount -o remount,bind,ro "$2"; fi; shift 3; done; shift; exec "$@"'
    )

    def __init__(self, keep_visible: list[Path] | None = None) -> None:
        # Paths the pods' processes run from (the interpreter, the repository, the node's
        # state): a volume mounted over an ancestor of one (an emptyDir at /tmp, with the
        # checkout under /tmp) must not hide it, so it is bound back inside the volume.
        self.keep_visible = sorted({p.resolve() for p in keep_visible or [] if p.exists()})
        self.available = self._probe()
        if not self.available:
            log.warning(
                "unshare --mount does not work here: volumes and the service-account "
                "token are only available via their host paths"
            )

    @staticmethod
    def _probe() -> bool:
        import subprocess

        try:
            return (
                subprocess.run(
                    ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, timeout=10
                ).returncode
                == 0
            )
        except (OSError, subprocess.TimeoutExpired):
            return False

    def wrap(self, argv: list[str], mounts: list[tuple[Path, str, bool]], stage: Path) -> list[str]:
        """``stage``: a host directory of the pod's, outside every mount target."""
        if not mounts or not self.available:
            return argv
        args: list[str] = []
        for host, target, ro in mounts:
            dst = Path(target)
            if host.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.touch(exist_ok=True)
            kept = self._hidden_by(dst) if host.is_dir() else []
            staged = [stage / str(len(args)) / str(i) for i in range(len(kept))]
            for path, at in zip(kept, staged):  # held before the volume hides them ...
                at.mkdir(parents=True, exist_ok=True)
                args += [str(path), str(at), "rw"]
            args += [str(host), target, "ro" if ro else "rw"]
            for path, at in zip(kept, staged):  # ... and bound back inside it
                (host / path.relative_to(dst.resolve())).mkdir(parents=True, exist_ok=True)
                args += [str(at), str(path), "rw"]
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            self.SCRIPT,
            "podiq-mount",
            *args,
            "--",
            *argv,
        ]

    def _hidden_by(self, target: Path) -> list[Path]:
        """The kept paths under ``target``, outermost only."""
        target = target.resolve()
        under = [p for p in self.keep_visible if target in p.parents]
        return [p for p in under if not any(q in p.parents for q in under)]


def write_python_shim(directory: Path) -> Path:
    """A directory whose ``python``/``python3`` run the interpreter of the agent.

    Put first on pods' PATH, so ``command: [python, ...]`` uses the same
    interpreter (and installed packages) as the tests.  Small exec scripts
    rather than symlinks: a symlink to a virtualenv's python can lose the
    virtualenv, because Python looks for pyvenv.cfg next to the path it was
    started by.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3"):
        path = directory / name
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        path.chmod(0o755)
    return directory
