"""The Redis image of the kind tier: Debian's redis-server package on the local base.

No registry can be pulled, so the chart's default (the official image) is replaced by one
built here from tests/kind/redis/Dockerfile at a pinned package version. Like the node
image it carries a ``podiq.key`` label (the base, the version, the Dockerfile), so an
unchanged image is never rebuilt.
"""

from __future__ import annotations

import hashlib

from . import base, steps
from .paths import HERE

#: Debian's version of the redis-server package (bookworm-security), and the image's tag from it.
REDIS_VERSION = "5:7.0.15-1~deb12u10"
REPOSITORY = "podiq-kind/redis"
TAG = REDIS_VERSION.split(":", 1)[1].replace("~", "-")
IMAGE = f"{REPOSITORY}:{TAG}"
CONTEXT = HERE / "redis"


def key() -> str:
    parts = (base.key(), REDIS_VERSION, steps.source_key(CONTEXT))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def build() -> str:
    """Returns the image's name, building it when it is missing or out of date."""
    base_image = base.build()
    k = key()
    if base.image_key(IMAGE) == k:
        return IMAGE
    with steps.timed(f"redis image {IMAGE}"):
        steps.run(
            [
                "docker",
                "build",
                "--build-arg",
                f"BASE_IMAGE={base_image}",
                "--build-arg",
                f"REDIS_VERSION={REDIS_VERSION}",
                "--label",
                f"podiq.key={k}",
                "-t",
                IMAGE,
                str(CONTEXT),
            ],
            timeout=900,
        )
    return IMAGE
