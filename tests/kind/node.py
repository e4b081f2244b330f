"""The kind node image and the control-plane images inside it, built from the local tool chain.

``kind build node-image`` pulls images from inside its build container, so it cannot work
offline. Here the control-plane images are made from the locally built binaries, under the
names ``kubeadm config images list`` prints, and saved into the node image, where a unit
imports them into containerd at boot (tests/kind/node/).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from tests.cluster import building

from . import base, steps
from .paths import HERE, cache_root
from .toolchain import TOOLS, Binaries, coredns_version

NODE_IMAGE = f"podiq-kind/node:{building.KUBERNETES_VERSION}"
# kubeadm names a newer etcd than the one built here; the cluster config points it at this tag.
ETCD_TAG = building.ETCD_VERSION.lstrip("v") + "-0"
# Static Go binaries need nothing around them; kube-proxy needs iptables and conntrack.
_STATIC = "FROM scratch\nCOPY {binary} /usr/local/bin/{binary}\nENV PATH=/usr/local/bin\nLABEL podiq.key={key}\n"
_KUBE_PROXY = (
    "FROM {base}\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
    "--no-install-recommends iptables conntrack && rm -rf /var/lib/apt/lists/*\n"
    "COPY kube-proxy /usr/local/bin/kube-proxy\nLABEL podiq.key={key}\n"
)
_PAUSE = 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\nLABEL podiq.key={key}\n'
# As upstream's image: kubeadm's Deployment gives only the arguments. It runs as root here, where
# upstream's runs as nonroot with a file capability; the Deployment adds NET_BIND_SERVICE either way.
_COREDNS = 'FROM scratch\nCOPY coredns /coredns\nENTRYPOINT ["/coredns"]\nLABEL podiq.key={key}\n'


def key(binaries: Binaries) -> str:
    parts = [
        building.version_key(),
        *(f"{t.name}-{t.version}" for t in TOOLS),
        base.key(),
        steps.source_key(HERE / "node"),
        steps.source_key(HERE / "runcwrap"),
        steps.source_key(HERE / "pause"),
        steps.source_key(HERE / "coredns"),
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def control_plane_images(binaries: Binaries) -> dict[str, str]:
    """kubeadm's image names for this version, by component (kube-apiserver, etcd, pause, ...)."""
    listed = steps.run(
        [
            str(binaries.node / "kubeadm"),
            "config",
            "images",
            "list",
            "--kubernetes-version",
            building.KUBERNETES_VERSION,
        ],
        timeout=60,
        capture=True,
    )
    images = {}
    for line in listed.split():
        component = line.rsplit("/", 1)[-1].split(":", 1)[0]
        images[component] = line
    images["etcd"] = images["etcd"].rsplit(":", 1)[0] + ":" + ETCD_TAG
    # kubeadm's Deployment names this tag: the binary under it must be that release.
    listed_coredns = images["coredns"].rsplit(":", 1)[1]
    if listed_coredns != coredns_version():
        raise steps.KindError(
            f"kubeadm {building.KUBERNETES_VERSION} deploys CoreDNS {listed_coredns}, tests/kind/coredns/go.mod "
            f"builds {coredns_version()}: require {listed_coredns} there (go get, go mod tidy)"
        )
    return images


def _image(name: str, dockerfile: str, files: dict[str, Path], key: str) -> None:
    if base.image_key(name) == key:
        return
    with tempfile.TemporaryDirectory(dir=cache_root()) as tmp:
        context = Path(tmp)
        for target, source in files.items():
            shutil.copy2(source, context / target)
        (context / "Dockerfile").write_text(dockerfile.format(key=key, base=base.IMAGE, binary=next(iter(files))))
        steps.run(["docker", "build", "-q", "-t", name, str(context)], timeout=900)


def _control_plane(binaries: Binaries, images: dict[str, str], key: str) -> list[str]:
    k8s = binaries.kubernetes
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
        _image(images[component], _STATIC, {component: k8s / component}, key)
    _image(images["kube-proxy"], _KUBE_PROXY, {"kube-proxy": binaries.node / "kube-proxy"}, key)
    _image(images["pause"], _PAUSE, {"pause": binaries.pause}, key)
    _image(images["coredns"], _COREDNS, {"coredns": binaries.coredns}, key)
    return [
        images[c]
        for c in (
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "etcd",
            "kube-proxy",
            "pause",
            "coredns",
        )
    ]


def build(binaries: Binaries) -> str:
    k = key(binaries)
    if base.image_key(NODE_IMAGE) == k:
        return NODE_IMAGE
    images = control_plane_images(binaries)
    with steps.timed("control-plane images"):
        names = _control_plane(binaries, images, k)
    with steps.timed(f"node image {NODE_IMAGE}"), tempfile.TemporaryDirectory(dir=cache_root()) as tmp:
        context = Path(tmp)
        shutil.copytree(HERE / "node", context, dirs_exist_ok=True)
        config = context / "files/etc/containerd/config.toml"
        config.write_text(config.read_text().replace("@PAUSE_IMAGE@", images["pause"]))
        (context / "bin").mkdir()
        for name in ("containerd", "ctr", "containerd-shim-runc-v2"):
            shutil.copy2(binaries.tools["containerd"] / name, context / "bin" / name)
        shutil.copy2(binaries.tools["cri-tools"] / "crictl", context / "bin" / "crictl")
        for name in ("kubelet", "kubeadm"):
            shutil.copy2(binaries.node / name, context / "bin" / name)
        shutil.copy2(binaries.kubernetes / "kubectl", context / "bin" / "kubectl")
        shutil.copytree(binaries.tools["cni-plugins"], context / "cni")
        shutil.copy2(steps.local_program("runcwrap"), context / "runcwrap")
        (context / "images").mkdir()
        steps.run(["docker", "save", "-o", str(context / "images" / "control-plane.tar"), *names], timeout=600)
        (context / "version").write_text(building.KUBERNETES_VERSION + "\n")
        steps.run(
            [
                "docker",
                "build",
                "--build-arg",
                f"BASE_IMAGE={base.IMAGE}",
                "--label",
                f"podiq.key={k}",
                "-t",
                NODE_IMAGE,
                str(context),
            ],
            timeout=1800,
        )
    return NODE_IMAGE
