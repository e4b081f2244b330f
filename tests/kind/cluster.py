"""The kind cluster: created from the local node image, with kubectl and helm bound to it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import steps
from .node import ETCD_TAG
from .paths import run_dir
from .toolchain import Binaries

NAME = "podiq"
# kubelet 1.37 refuses cgroup v1 unless told otherwise (CI machines may be v1 hosts). kubeadm's
# phases are kind's (preflight skipped): its CoreDNS runs from the image saved in the node.
CONFIG = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  disableDefaultCNI: true
kubeadmConfigPatches:
- |
  kind: KubeletConfiguration
  failCgroupV1: false
- |
  kind: ClusterConfiguration
  etcd:
    local:
      imageTag: {etcd_tag}
nodes:
- role: control-plane
  image: {image}
"""


class KindCluster:
    def __init__(self, name: str, kubeconfig: Path, binaries: Binaries) -> None:
        self.name = name
        self.kubeconfig = kubeconfig
        self.binaries = binaries
        self.env = dict(os.environ, PATH=binaries.path(), KUBECONFIG=str(kubeconfig))

    def _run(self, tool: str, args: tuple[str, ...], check: bool, timeout: float, input: str | None) -> Any:
        done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=timeout, input=input, env=self.env)
        if check and done.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60, input: str | None = None) -> Any:
        return self._run("kubectl", args, check, timeout, input)

    def helm(self, *args: str, check: bool = True, timeout: float = 180, input: str | None = None) -> Any:
        return self._run("helm", args, check, timeout, input)

    def kind(self, *args: str, check: bool = True, timeout: float = 600) -> Any:
        return self._run("kind", args, check, timeout, None)

    def load(self, *images: str) -> None:
        """`kind load docker-image`, as a user does with images built on their machine."""
        with steps.timed(f"kind load docker-image {' '.join(images)}"):
            self.kind("load", "docker-image", *images, "--name", self.name, timeout=900)


def kubeconfig() -> Path:
    return run_dir() / "kubeconfig"


def exists(binaries: Binaries, name: str = NAME) -> bool:
    done = subprocess.run(
        [str(binaries.tools["kind"] / "kind"), "get", "clusters"], capture_output=True, text=True, timeout=60
    )
    return name in done.stdout.split()


def _node_diagnostics(name: str) -> str:
    node = f"{name}-control-plane"
    parts = []
    for cmd in (
        ["docker", "logs", "--tail", "40", node],
        [
            "docker",
            "exec",
            node,
            "journalctl",
            "--no-pager",
            "-n",
            "60",
            "-u",
            "kubelet",
            "-u",
            "containerd",
            "-u",
            "podiq-images",
        ],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        parts.append(f"$ {' '.join(cmd)}\n{done.stdout}{done.stderr}")
    return "\n".join(parts)


def create(binaries: Binaries, image: str, name: str = NAME) -> KindCluster:
    cluster = KindCluster(name, kubeconfig(), binaries)
    if exists(binaries, name):
        cluster.kind("export", "kubeconfig", "--name", name, "--kubeconfig", str(cluster.kubeconfig))
        return cluster
    config = run_dir() / "kind-config.yaml"
    config.write_text(CONFIG.format(image=image, etcd_tag=ETCD_TAG))
    with steps.timed(f"kind create cluster {name}"):
        done = cluster.kind(
            "create",
            "cluster",
            "--name",
            name,
            "--config",
            str(config),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--wait",
            "240s",
            "--retain",
            check=False,
            timeout=900,
        )
        if done.returncode != 0:
            diagnostics = _node_diagnostics(name)
            cluster.kind("delete", "cluster", "--name", name, check=False)
            raise steps.KindError(f"kind create cluster failed:\n{done.stdout}{done.stderr}\n{diagnostics}")
    # kind waits for the node only; pods resolve Service names (the chart's Redis) once CoreDNS is ready.
    with steps.timed("coredns ready"):
        done = cluster.kubectl(
            *("rollout", "status", "deployment/coredns", "-n", "kube-system", "--timeout=180s"),
            check=False,
            timeout=200,
        )
    if done.returncode != 0:
        selector = ("-n", "kube-system", "-l", "k8s-app=kube-dns")
        pods = cluster.kubectl("describe", "pods", *selector, check=False).stdout
        logs = cluster.kubectl("logs", *selector, "--previous", "--tail=30", "--prefix", check=False)
        diagnostics = _node_diagnostics(name)
        cluster.kind("delete", "cluster", "--name", name, check=False)
        raise steps.KindError(
            f"CoreDNS did not become ready:\n{done.stdout}{done.stderr}\n{pods}\n"
            f"{logs.stdout}{logs.stderr}\n{diagnostics}"
        )
    return cluster


def delete(binaries: Binaries, name: str = NAME) -> None:
    if exists(binaries, name):
        with steps.timed(f"kind delete cluster {name}"):
            steps.run(
                [str(binaries.tools["kind"] / "kind"), "delete", "cluster", "--name", name],
                timeout=300,
                env=dict(os.environ, PATH=binaries.path()),
            )
    kubeconfig().unlink(missing_ok=True)
    print(f"[kind] cluster {name} deleted", file=sys.stderr)
