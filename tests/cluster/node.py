"""The node agent: a stand-in kubelet that runs pods as local processes.

It registers one Ready node (addresses and kubelet port pointing at its own
log endpoint), keeps the node's Lease fresh, watches the pods the scheduler
binds to it and runs them with pods.PodRunner.  A deleted pod's processes get
SIGTERM, then SIGKILL after the grace period; once they are gone the agent
reports the final status and finishes the deletion with gracePeriodSeconds=0,
as a kubelet does.

Run as ``python -m tests.cluster.node --kubeconfig ... --name ... --state-dir ...``
(controlplane.py starts it with the node's own client certificate).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from . import building
from .kubeapi import STRATEGIC, ApiException, KubeApi
from .logserver import LogServer
from .pods import TERMINAL, Mounter, PodRunner, write_python_shim

log = logging.getLogger("podiq.node")

LEASE_SECONDS = 40
LEASE_RENEW_SECONDS = 10
STATUS_SECONDS = 30


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _memory_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 4 * 1024 * 1024


class NodeAgent:
    def __init__(
        self,
        api: KubeApi,
        *,
        name: str,
        state_dir: Path,
        port: int,
        api_port: int,
        ca: Path,
        serving_cert: Path,
        serving_key: Path,
    ) -> None:
        self.api = api
        self.name = name
        self.state_dir = state_dir
        self.port = port
        self.api_port = api_port
        self.ca_path = ca
        self.shim_dir = write_python_shim(state_dir / "python-shim")
        self.mounter = Mounter(
            keep_visible=[
                Path(sys.prefix),
                Path(sys.base_prefix),
                Path(os.path.realpath(sys.executable)).parent,
                Path(__file__).resolve().parents[2],
                Path.cwd(),
                state_dir,
                *(Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p),
            ]
        )
        self.logs = LogServer(self, port, serving_cert, serving_key, ca)
        self.runners: dict[str, PodRunner] = {}
        self.finalized: set[str] = set()
        self._stopping = asyncio.Event()
        self._node_uid = ""
        self._background: set[asyncio.Task] = set()

    # -- lookups for the log server --------------------------------------

    def runner_by_name(self, ns: str, name: str) -> PodRunner | None:
        found = [r for r in self.runners.values() if r.ns == ns and r.name == name]
        return found[-1] if found else None

    # -- main ------------------------------------------------------------

    async def run(self) -> None:
        await self.logs.start()
        await self._register()
        tasks = [asyncio.create_task(coro) for coro in (self._lease_loop(), self._status_loop(), self._pod_loop())]
        await self._stopping.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Shutting down: stop every pod's processes, quickly.
        await asyncio.gather(*(r.stop(grace=3) for r in self.runners.values() if not r.done), return_exceptions=True)
        await self.logs.close()

    def request_stop(self) -> None:
        self._stopping.set()

    # -- node object -----------------------------------------------------

    def _node_status(self) -> dict:
        cpu = str(os.cpu_count() or 1)
        resources = {"cpu": cpu, "memory": f"{_memory_kib()}Ki", "pods": "110", "ephemeral-storage": "100Gi"}
        heartbeat = _now()
        conds = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID"),
            ("Ready", "True", "KubeletReady"),
        ]
        return {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": t,
                    "status": s,
                    "reason": r,
                    "message": "podiq test node",
                    "lastHeartbeatTime": heartbeat,
                    "lastTransitionTime": self._started,
                }
                for t, s, r in conds
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            # Where the API server sends `kubectl logs`.
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {
                "machineID": self._machine_id,
                "systemUUID": self._machine_id,
                "bootID": self._machine_id,
                "kernelVersion": platform.release(),
                "osImage": "podiq local processes",
                "containerRuntimeVersion": "podiq-local://1",
                "kubeletVersion": building.KUBERNETES_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    async def _register(self) -> None:
        self._started = _now()
        self._machine_id = uuid.uuid4().hex
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
        }
        for attempt in range(50):
            try:
                try:
                    node = await self.api.request("POST", "/api/v1/nodes", body=body)
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                    node = await self.api.get(f"/api/v1/nodes/{self.name}")
                self._node_uid = node["metadata"]["uid"]
                await self._patch_status()
                log.info("registered node %s", self.name)
                return
            except (ApiException, OSError) as exc:
                # Right after start the API server may still be setting up RBAC.
                log.warning("registering node failed (attempt %d): %s", attempt + 1, exc)
                await asyncio.sleep(0.5)
        raise RuntimeError("could not register the node")

    async def _patch_status(self) -> None:
        await self.api.request(
            "PATCH", f"/api/v1/nodes/{self.name}/status", body={"status": self._node_status()}, content_type=STRATEGIC
        )

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_SECONDS)
            try:
                await self._patch_status()
            except Exception as exc:  # noqa: BLE001 - keep heartbeating
                log.warning("node status update failed: %s", exc)

    async def _lease_loop(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        while True:
            try:
                try:
                    lease = await self.api.get(path)
                    lease["spec"]["renewTime"] = _micro_now()
                    lease["spec"]["holderIdentity"] = self.name
                    await self.api.request("PUT", path, body=lease)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                    await self.api.request(
                        "POST",
                        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                        body={
                            "apiVersion": "coordination.k8s.io/v1",
                            "kind": "Lease",
                            "metadata": {
                                "name": self.name,
                                "namespace": "kube-node-lease",
                                "ownerReferences": [
                                    {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self._node_uid}
                                ],
                            },
                            "spec": {
                                "holderIdentity": self.name,
                                "leaseDurationSeconds": LEASE_SECONDS,
                                "renewTime": _micro_now(),
                            },
                        },
                    )
            except Exception as exc:  # noqa: BLE001 - retry at the next tick
                log.warning("lease renewal failed: %s", exc)
            await asyncio.sleep(LEASE_RENEW_SECONDS)

    # -- pods ------------------------------------------------------------

    async def _pod_loop(self) -> None:
        selector = f"spec.nodeName={self.name}"
        while True:
            try:
                listing = await self.api.get("/api/v1/pods", fieldSelector=selector)
                rv = listing["metadata"]["resourceVersion"]
                present = set()
                for pod in listing["items"]:
                    present.add(pod["metadata"]["uid"])
                    self._on_pod(pod)
                for uid, runner in list(self.runners.items()):
                    if uid not in present:
                        self._on_deleted(runner.pod)
                while True:
                    async for event in self.api.watch("/api/v1/pods", resource_version=rv, fieldSelector=selector):
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            raise ApiException(status=obj.get("code", 500), reason=obj.get("message", ""))
                        rv = obj["metadata"]["resourceVersion"]
                        if event["type"] == "DELETED":
                            self._on_deleted(obj)
                        elif event["type"] in ("ADDED", "MODIFIED"):
                            self._on_pod(obj)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - relist after any watch failure
                log.info("pod watch restarting: %s", exc)
                await asyncio.sleep(0.5)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_pod(self, pod: dict) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        deleting = meta.get("deletionTimestamp") is not None
        runner = self.runners.get(uid)
        if runner is None:
            if deleting or pod.get("status", {}).get("phase") in TERMINAL:
                # Never ran here (or finished before a restart of the agent).
                if deleting:
                    self._spawn(self._finalize(pod))
                return
            runner = PodRunner(self, pod)
            self.runners[uid] = runner
            runner.start()
            return
        runner.pod = pod
        if deleting and not runner.stopping:
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            self._spawn(self._terminate(runner, float(grace)))
        elif deleting and runner.done:
            self._spawn(self._finalize(pod))

    def _on_deleted(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        runner = self.runners.pop(uid, None)
        self.finalized.discard(uid)
        if runner is not None and not runner.done:
            # Gone from the API without us finishing it (e.g. a forced delete).
            self._spawn(runner.stop(grace=0))

    async def _terminate(self, runner: PodRunner, grace: float) -> None:
        await runner.stop(grace)
        await self._finalize(runner.pod)

    async def _finalize(self, pod: dict) -> None:
        meta = pod["metadata"]
        if meta["uid"] in self.finalized:
            return
        self.finalized.add(meta["uid"])
        try:
            await self.api.request(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                body={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": meta["uid"]},
                },
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("finalizing deletion of %s/%s failed: %s", meta["namespace"], meta["name"], exc)
                self.finalized.discard(meta["uid"])


async def _main(args: argparse.Namespace) -> None:
    api = await KubeApi.from_kubeconfig(args.kubeconfig)
    agent = NodeAgent(
        api,
        name=args.name,
        state_dir=Path(args.state_dir),
        port=args.port,
        api_port=args.api_port,
        ca=Path(args.ca),
        serving_cert=Path(args.serving_cert),
        serving_key=Path(args.serving_key),
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.request_stop)
    try:
        await agent.run()
    finally:
        await api.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="podiq test node agent")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--port", type=int, required=True, help="HTTPS port for the log endpoint")
    parser.add_argument("--api-port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--serving-cert", required=True)
    parser.add_argument("--serving-key", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
