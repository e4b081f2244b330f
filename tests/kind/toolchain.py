"""The node's tool chain, built with Go from the module proxy at pinned versions.

Each tool is cached in its own ``<name>-<version>/bin`` directory, so a version bump rebuilds
only that tool. kubelet, kubeadm and kube-proxy come from the Kubernetes build in
tests/cluster/building.py, etcd and the control-plane commands too. CoreDNS is a main of
this directory (coredns/) with a smaller plugin set, pinned by its go.mod and cached by the
digest of its source.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.cluster import building

from . import steps
from .paths import HERE, cache_root

KIND_VERSION = "v0.33.0"
CONTAINERD_VERSION = "v2.4.2"
CRI_TOOLS_VERSION = "v1.37.0"
CNI_PLUGINS_VERSION = "v1.10.0"
COREDNS_MODULE = "github.com/coredns/coredns"


@dataclass(frozen=True)
class Tool:
    name: str
    version: str
    packages: tuple[str, ...]  # go install targets, without @version
    tags: str = ""

    @property
    def dir(self) -> Path:
        return cache_root() / "tools" / f"{self.name}-{self.version}"

    @property
    def bin(self) -> Path:
        return self.dir / "bin"

    @property
    def binaries(self) -> list[str]:
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in self.packages]

    def done(self) -> bool:
        return all(os.access(self.bin / b, os.X_OK) for b in self.binaries)


TOOLS = (
    Tool("kind", KIND_VERSION, ("sigs.k8s.io/kind",)),
    # The optional snapshotters are never used in a kind node (kind's own build leaves them out).
    Tool(
        "containerd",
        CONTAINERD_VERSION,
        tuple(f"github.com/containerd/containerd/v2/cmd/{c}" for c in ("containerd", "ctr", "containerd-shim-runc-v2")),
        tags="no_aufs no_zfs no_btrfs no_devmapper",
    ),
    Tool("cri-tools", CRI_TOOLS_VERSION, ("sigs.k8s.io/cri-tools/cmd/crictl",)),
    Tool(
        "cni-plugins",
        CNI_PLUGINS_VERSION,
        tuple(
            f"github.com/containernetworking/plugins/plugins/{p}"
            for p in ("main/bridge", "main/loopback", "ipam/host-local", "meta/portmap")
        ),
    ),
)


def _install(tool: Tool) -> None:
    tmp = tool.dir / "tmp"
    partial = tool.dir / "bin.partial"
    shutil.rmtree(partial, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    env = dict(steps.go_env(tmp), GOBIN=str(partial))
    cmd = ["go", "install", "-trimpath", "-ldflags", "-s -w"]
    if tool.tags:
        cmd += ["-tags", tool.tags]
    steps.run([*cmd, *(f"{p}@{tool.version}" for p in tool.packages)], cwd=tmp, env=env, timeout=2400)
    shutil.rmtree(tool.bin, ignore_errors=True)
    partial.rename(tool.bin)
    shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Binaries:
    """Paths of everything the node and its images are made of."""

    kubernetes: Path  # kube-apiserver, -controller-manager, -scheduler, kubectl, etcd, helm
    node: Path  # kubelet, kubeadm, kube-proxy
    tools: dict[str, Path]
    pause: Path
    coredns: Path

    def path(self) -> str:
        """PATH with kind, kubectl and helm first."""
        return os.pathsep.join([str(self.tools["kind"]), str(self.kubernetes), os.environ.get("PATH", "")])


def build() -> Binaries:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    if shutil.which("go") is None:
        raise steps.KindError("the 'go' command is not on PATH; Go >= 1.26 builds the kind tier's tool chain")
    try:
        kubernetes = building.build()
        node = building.build_node()
    except building.BuildError as exc:
        raise steps.KindError(f"the Kubernetes build failed: {exc}") from exc
    with (root / ".tools.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for tool in TOOLS:
            if not tool.done():
                with steps.timed(f"go install {tool.name} {tool.version}"):
                    _install(tool)
        pause = steps.local_program("pause")
        coredns = steps.program_path("coredns")
        if not coredns.exists():
            # Cold, it compiles client-go and gRPC: minutes on a busy machine, not the pause's seconds.
            with steps.timed(f"go build coredns {coredns_version()}"):
                steps.local_program("coredns", timeout=2400)
    print(f"[kind] tool chain ready in {root / 'tools'}", file=sys.stderr)
    return Binaries(
        kubernetes=kubernetes, node=node, tools={t.name: t.bin for t in TOOLS}, pause=pause, coredns=coredns
    )


def coredns_version() -> str:
    """The CoreDNS release that coredns/ is built from: the version its go.mod requires."""
    for line in (HERE / "coredns" / "go.mod").read_text().splitlines():
        words = line.split()
        if words[:1] == ["require"]:
            words = words[1:]
        if len(words) >= 2 and words[0] == COREDNS_MODULE:
            return words[1]
    raise steps.KindError(f"tests/kind/coredns/go.mod requires no {COREDNS_MODULE}")


def binaries() -> Binaries:
    """The paths of an existing build, without building (for `down` and `env`)."""
    return Binaries(
        kubernetes=building.bin_dir(),
        node=building.node_bin_dir(),
        tools={t.name: t.bin for t in TOOLS},
        pause=steps.program_path("pause"),
        coredns=steps.program_path("coredns"),
    )
