"""The Debian base image, made with debootstrap because no image registry is reachable.

bookworm's python3 is 3.11, the version of the python:3.11-slim base users build on. The
rootfs tarball is cached, so a new Docker engine imports it in seconds instead of
bootstrapping again.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import steps
from .paths import cache_root

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# python3-pip gives the images pip; ca-certificates lets apt in builds use https mirrors.
PACKAGES = ("python3", "python3-pip", "ca-certificates")
IMAGE = f"podiq-kind/debian:{SUITE}"


def key() -> str:
    return hashlib.sha256(repr((SUITE, MIRROR, PACKAGES)).encode()).hexdigest()[:12]


def image_key(image: str) -> str | None:
    """The podiq.key label of a local image, or None when the image is not there."""
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", '{{index .Config.Labels "podiq.key"}}', image],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def _bootstrap(tarball: Path) -> None:
    with tempfile.TemporaryDirectory(dir=tarball.parent) as tmp:
        root = Path(tmp) / "rootfs"
        steps.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), MIRROR],
            timeout=1200,
        )
        # The image's python belongs to its user, as in python:3.11-slim: pip installs into it.
        (root / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
        (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(root / leftover, ignore_errors=True)
            (root / leftover).mkdir(parents=True)
        steps.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(tarball) + ".partial", "."], timeout=600)
        Path(str(tarball) + ".partial").rename(tarball)


def build() -> str:
    """Returns the base image's name, importing (and first bootstrapping) it when missing."""
    if image_key(IMAGE) == key():
        return IMAGE
    tarball = cache_root() / "base" / f"{SUITE}-{key()}.tar"
    tarball.parent.mkdir(parents=True, exist_ok=True)
    if not tarball.exists():
        with steps.timed(f"debootstrap {SUITE}"):
            _bootstrap(tarball)
    with steps.timed(f"docker import {IMAGE}"):
        steps.run(
            [
                "docker",
                "import",
                "--change",
                f"LABEL podiq.key={key()}",
                "--change",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--change",
                'CMD ["python3"]',
                str(tarball),
                IMAGE,
            ],
            timeout=600,
        )
    return IMAGE
