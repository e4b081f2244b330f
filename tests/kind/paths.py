"""Where the kind tier keeps what it builds (pinned, so cached by version) and what it runs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    base = os.environ.get("PODIQ_CACHE_DIR") or os.path.join(Path.home(), ".cache", "podiq")
    return Path(base) / "kind"


def run_dir() -> Path:
    """State of the dockerd and cluster this tier started (pid files, logs, kubeconfig)."""
    path = cache_root() / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
