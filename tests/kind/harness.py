"""The kind tier from start to end: engine, tool chain, images, cluster; and the way back."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import cluster, dockerd, images, node, redis_image, steps, toolchain
from .cluster import KindCluster
from .paths import run_dir

# Loaded into the node: podiq's images, and the Redis the chart deploys with redis.enabled.
IMAGES = (images.RUNTIME, images.OPERATOR, images.TASKS, redis_image.IMAGE)


@dataclass
class Built:
    binaries: toolchain.Binaries
    node_image: str


def _state_file() -> Path:
    return run_dir() / "state.json"


def build(engine: dockerd.Engine) -> Built:
    started = time.monotonic()
    engine.start()
    binaries = toolchain.build()
    with steps.timed("podiq images"):
        images.build()
    redis_image.build()
    node_image = node.build(binaries)
    print(f"[kind] everything built in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return Built(binaries, node_image)


def up() -> KindCluster:
    """Builds what is missing, starts the engine and the cluster, loads podiq's images into it."""
    engine = dockerd.Engine()
    built = build(engine)
    # A second `up` finds the engine running: whether to stop it stays the first one's call.
    started = engine.started or _read_state().get("dockerd_started", False)
    _state_file().write_text(json.dumps({"dockerd_started": started}))
    kind = cluster.create(built.binaries, built.node_image)
    kind.load(*IMAGES)
    return kind


def _read_state() -> dict:
    try:
        return json.loads(_state_file().read_text())
    except (FileNotFoundError, ValueError):
        return {}


def down() -> None:
    """Deletes the cluster and stops the engine if this tier started it."""
    engine = dockerd.Engine()
    state = _read_state()
    if engine.running():
        cluster.delete(toolchain.binaries())
    if state.get("dockerd_started"):
        engine.stop()
    _state_file().unlink(missing_ok=True)


@contextmanager
def session() -> Iterator[KindCluster]:
    """A cluster for one test session: an existing one (from `up`) is used and left running;
    otherwise the cluster, and the engine if it was not running, are stopped at the end."""
    engine = dockerd.Engine()
    built = build(engine)
    existed = cluster.exists(built.binaries)
    kind = cluster.create(built.binaries, built.node_image)
    try:
        kind.load(*IMAGES)
        yield kind
    finally:
        if not existed:
            cluster.delete(built.binaries)
        if engine.started:
            engine.stop()
