"""A local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, plus the node agent, all as processes listening on 127.0.0.1.

Flags follow what kubeadm and envtest use, trimmed to one machine: every
component has its own client certificate so RBAC and the Node authorizer see
real identities, and the controller manager runs each controller under its own
service account (``--use-service-account-credentials``) like a real cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from . import building, certs, procs

NODE_NAME = "podiq-node"
SERVICE_CIDR = "10.96.0.0/16"
# Where the apiserver's ``kubernetes`` service would be; only in the serving cert.
SERVICE_IP = "10.96.0.1"


def run_root() -> Path:
    return building.cache_root().parent / "run"


def _kubeconfig(path: Path, server: str, ca: Path, pair: certs.CertPair, user: str) -> Path:
    # JSON is valid YAML, so no YAML library is needed to write a kubeconfig.
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "podiq-test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
                "users": [{"name": user, "user": {"client-certificate": str(pair.cert), "client-key": str(pair.key)}}],
                "contexts": [{"name": "podiq-test", "context": {"cluster": "podiq-test", "user": user}}],
                "current-context": "podiq-test",
            },
            indent=1,
        )
    )
    path.chmod(0o600)
    return path


@dataclass
class ControlPlane:
    """Start with :meth:`start`, stop with :meth:`stop`; state lives in ``state_dir``."""

    bin_dir: Path
    state_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    kubeconfig: Path | None = None
    _procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    _argv: dict[str, tuple[list[str], dict]] = field(default_factory=dict)

    @property
    def pids(self) -> procs.PidFile:
        return procs.PidFile(self.state_dir / "pids.json")

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    # -- lifecycle -------------------------------------------------------

    def start(self, *, timeout: float = 120.0) -> None:
        t0 = time.monotonic()
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in ("etcd", "apiserver", "controller-manager", "scheduler", "kubelet"):
            self.ports[name] = procs.free_port()
        self.ports["etcd-peer"] = procs.free_port()
        self._make_certs()
        try:
            self._start_etcd(timeout)
            self._start_apiserver(timeout)
            # These two are independent of each other; start both, then wait.
            self._start_controller_manager()
            self._start_scheduler()
            self._start_node()
            self._wait_components(timeout - (time.monotonic() - t0))
        except BaseException:
            self.stop()
            raise
        (self.state_dir / "state.json").write_text(
            json.dumps(
                {
                    "kubeconfig": str(self.kubeconfig),
                    "bin_dir": str(self.bin_dir),
                    "ports": self.ports,
                    "started_in_seconds": round(time.monotonic() - t0, 1),
                },
                indent=1,
            )
        )

    def stop(self) -> None:
        # Node first, so it can stop its pods' processes; then the control plane
        # in reverse start order.
        entries = self.pids.entries()
        order = {"node": 0, "scheduler": 1, "controller-manager": 1, "apiserver": 2, "etcd": 3}
        for entry in sorted(entries, key=lambda e: order.get(e["name"], 0)):
            if procs.alive(entry["pid"], entry["exe"]):
                procs.stop_group(entry["pid"], grace=15.0 if entry["name"] == "node" else 5.0)
            else:
                procs.stop_group(entry["pid"], grace=0.5)  # leftover group members, if any
        # Pod process groups the node recorded, in case the node itself died hard.
        for pidfile in (self.state_dir / "node").glob("pods/*/pgids/*"):
            try:
                pgid = int(pidfile.name)
            except ValueError:
                continue
            procs.stop_group(pgid, grace=0.5)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self.pids.clear()

    # -- pieces ----------------------------------------------------------

    def _make_certs(self) -> None:
        pki = self.state_dir / "pki"
        self.ca = certs.CertificateAuthority(pki)
        hosts = (
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            SERVICE_IP,
        )
        self.apiserver_cert = self.ca.issue("apiserver", "kube-apiserver", server=True, hosts=hosts)
        self.kubelet_client = self.ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", client=True)
        self.sa_keys = certs.service_account_keys(pki)
        admin = self.ca.issue("admin", "podiq-admin", orgs=("system:masters",), client=True)
        kcm = self.ca.issue("controller-manager", "system:kube-controller-manager", client=True)
        sched = self.ca.issue("scheduler", "system:kube-scheduler", client=True)
        node = self.ca.issue("node", f"system:node:{NODE_NAME}", orgs=("system:nodes",), client=True)
        self.kubelet_serving = self.ca.issue(
            "kubelet-serving", NODE_NAME, server=True, hosts=("127.0.0.1", "localhost", NODE_NAME)
        )
        cfg = self.state_dir / "kubeconfigs"
        cfg.mkdir(exist_ok=True)
        url = self.api_url
        self.kubeconfig = _kubeconfig(self.state_dir / "admin.kubeconfig", url, self.ca.cert_path, admin, "admin")
        self.kcm_kubeconfig = _kubeconfig(cfg / "controller-manager", url, self.ca.cert_path, kcm, "kcm")
        self.sched_kubeconfig = _kubeconfig(cfg / "scheduler", url, self.ca.cert_path, sched, "scheduler")
        self.node_kubeconfig = _kubeconfig(cfg / "node", url, self.ca.cert_path, node, "node")

    def _died(self, name: str):
        def check() -> str | None:
            proc = self._procs[name]
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-20:]
                return f"{name} exited with {proc.returncode}; last log lines:\n  " + "\n  ".join(tail)
            return None

        return check

    def _start(self, name: str, argv: list[str], **kw) -> None:
        self._argv[name] = (argv, kw)
        self._procs[name] = procs.start(name, argv, self.logs / f"{name}.log", self.pids, **kw)

    def restart(self, name: str, *, down_for: float = 0.0, hard: bool = False, timeout: float = 60.0) -> None:
        """Stop one component ("apiserver" or "etcd"; SIGKILL with ``hard``), keep it down for
        ``down_for`` seconds, and start it again with the same flags and port, for fault tests."""
        proc = self._procs[name]
        procs.stop_group(proc.pid, grace=0.0 if hard else 5.0)
        proc.wait(timeout=10)
        time.sleep(down_for)
        argv, kw = self._argv[name]
        self._start(name, argv, **kw)
        if name == "etcd":
            self._wait_etcd(timeout)
        self._wait_apiserver(timeout)

    def _start_etcd(self, timeout: float) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        self._start(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=podiq",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=podiq={peer}",
                # Test data is disposable: skip fsync, which dominates write latency.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait_etcd(timeout)

    def _wait_etcd(self, timeout: float) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        procs.wait_until(
            "etcd health",
            lambda: json.loads(urllib.request.urlopen(f"{client}/health", timeout=2).read()).get("health") == "true",
            timeout=timeout,
            died=self._died("etcd"),
        )

    def _wait_apiserver(self, timeout: float) -> None:
        procs.wait_until(
            "kube-apiserver /readyz",
            lambda: self._get("/readyz")[0] == 200,
            timeout=timeout,
            interval=0.3,
            died=self._died("apiserver"),
        )

    def _start_apiserver(self, timeout: float) -> None:
        pki = self.ca.dir
        self._start(
            "apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={self.apiserver_cert.cert}",
                f"--tls-private-key-file={self.apiserver_cert.key}",
                f"--client-ca-file={self.ca.cert_path}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self.sa_keys.cert}",
                f"--service-account-signing-key-file={self.sa_keys.key}",
                # Where `kubectl logs` goes: the node agent's HTTPS endpoint.
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-certificate-authority={self.ca.cert_path}",
                f"--kubelet-client-certificate={self.kubelet_client.cert}",
                f"--kubelet-client-key={self.kubelet_client.key}",
                "--allow-privileged=true",
                # The `kubernetes` service cannot point at a loopback address; pods
                # get KUBERNETES_SERVICE_HOST=127.0.0.1 from the node agent instead.
                "--endpoint-reconciler-type=none",
                "--v=1",
            ],
        )
        self._wait_apiserver(timeout)

    def _common_component_flags(self, kubeconfig: Path, port: int) -> list[str]:
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            # One instance per cluster: no need to wait on a leader lease.
            "--leader-elect=false",
            "--v=1",
        ]

    def _start_controller_manager(self) -> None:
        self._start(
            "controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                *self._common_component_flags(self.kcm_kubeconfig, self.ports["controller-manager"]),
                # All default controllers: job, cronjob, garbage collector, namespace,
                # service account (+ token), root-ca publisher, deployment, replicaset, ...
                "--controllers=*",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.sa_keys.key}",
                f"--root-ca-file={self.ca.cert_path}",
                f"--cluster-signing-cert-file={self.ca.cert_path}",
                f"--cluster-signing-key-file={self.ca.key_path}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # Faster garbage collection of finished pods and quicker reaction to
                # a node that stops heartbeating; defaults are tuned for big clusters.
                "--terminated-pod-gc-threshold=200",
                "--concurrent-gc-syncs=5",
            ],
        )

    def _start_scheduler(self) -> None:
        self._start(
            "scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                *self._common_component_flags(self.sched_kubeconfig, self.ports["scheduler"]),
            ],
        )

    def _start_node(self) -> None:
        node_dir = self.state_dir / "node"
        node_dir.mkdir(exist_ok=True)
        repo_root = Path(__file__).resolve().parents[2]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root), env.get("PYTHONPATH")]))
        self._start(
            "node",
            [
                sys.executable,
                "-m",
                "tests.cluster.node",
                f"--kubeconfig={self.node_kubeconfig}",
                f"--name={NODE_NAME}",
                f"--state-dir={node_dir}",
                f"--port={self.ports['kubelet']}",
                f"--ca={self.ca.cert_path}",
                f"--serving-cert={self.kubelet_serving.cert}",
                f"--serving-key={self.kubelet_serving.key}",
                f"--api-port={self.ports['apiserver']}",
            ],
            env=env,
            cwd=repo_root,
        )

    def _wait_components(self, timeout: float) -> None:
        timeout = max(timeout, 10.0)
        for name in ("controller-manager", "scheduler"):
            port = self.ports[name]
            procs.wait_until(
                f"{name} /healthz",
                lambda port=port: procs.https_get(f"https://127.0.0.1:{port}/healthz")[0] == 200,
                timeout=timeout,
                interval=0.3,
                died=self._died(name),
            )
        # The service-account controller and the root CA publisher are what make
        # pods admissible and in-cluster config usable.
        procs.wait_until(
            "default service account",
            lambda: self._get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
            timeout=timeout,
            died=self._died("controller-manager"),
        )
        procs.wait_until("node Ready", self._node_ready, timeout=timeout, died=self._died("node"))

    def _node_ready(self) -> bool:
        code, body = self._get(f"/api/v1/nodes/{NODE_NAME}")
        if code != 200:
            return False
        node = json.loads(body)
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", [])
        )
        taints = node.get("spec", {}).get("taints") or []
        return ready and not any(t.get("effect") == "NoSchedule" for t in taints)

    def _get(self, path: str) -> tuple[int, bytes]:
        admin = certs.CertPair(self.ca.dir / "admin.crt", self.ca.dir / "admin.key")
        return procs.https_get(self.api_url + path, ca=self.ca.cert_path, cert=(admin.cert, admin.key))


def new_state_dir(parent: Path | None = None) -> Path:
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="podiq-cluster-", dir=parent))


def remove_state_dir(path: Path) -> None:
    # Pod dirs may still have mounts from a node that died hard; those live in
    # the pods' own mount namespaces, so a plain rmtree is safe.
    shutil.rmtree(path, ignore_errors=True)
