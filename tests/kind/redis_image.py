"""The Redis image of the kind tier: Debian's redis-server package on the local base.

No registry can be pulled, so the chart's default (the official image) is replaced by one
built here from tests/kind/redis/Dockerfile at a pinned Redis version. Like the node
image it carries a ``podiq.key`` label (the base, the version, the Dockerfile), so an
unchanged image is never rebuilt.
"""

from __future__ import annotations

import hashlib

from . import base, steps
from .paths import HERE

#: Redis's version, of which the image takes Debian bookworm's newest revision; also its tag.
REDIS_VERSION = "7.0.15"
REPOSITORY = "podiq-kind/redis"
TAG = REDIS_VERSION
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
