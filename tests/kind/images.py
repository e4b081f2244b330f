"""The podiq images, built from the repository's Dockerfiles on the local Debian base.

Dependencies come as wheels built on the host from requirements/ci.txt (inside a container,
PyPI's certificates do not verify with the image's CA bundle), installed offline with
``--no-index``: the images hold exactly the locked versions.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

from . import base, steps
from .paths import REPO_ROOT, cache_root

TAG = "e2e"
RUNTIME = f"podiq/runtime:{TAG}"
OPERATOR = f"podiq/operator:{TAG}"
TASKS = f"podiq/runtime-tasks:{TAG}"
# The build backend the offline install of podiq itself needs (pyproject's build-system).
BUILD_BACKEND = ("setuptools==84.2.1", "wheel==0.48.0")
# What the base's Python (bookworm: 3.11.2) needs beyond the lock, resolved on a newer host
# Python: redis wants async-timeout before 3.11.3. pip download cannot resolve for another
# interpreter's markers, so these are named here.
BASE_PYTHON_ONLY = ("async-timeout==5.0.1",)
WHEELS_IN_CONTEXT = REPO_ROOT / "requirements" / "wheels"


def extras() -> list[str]:
    """The extras the Dockerfiles install ("/src[operator,redis]"), read from them so that the
    wheels never miss one."""
    found = set()
    for dockerfile in ("runtime/Dockerfile", "operator/Dockerfile"):
        for group in re.findall(r"/src\[([\w,-]+)\]", (REPO_ROOT / dockerfile).read_text()):
            found.update(group.split(","))
    return sorted(found)


def _lock_key() -> str:
    digest = hashlib.sha256()
    for name in ("requirements/ci.txt", "pyproject.toml"):
        digest.update((REPO_ROOT / name).read_bytes())
    digest.update(repr((BUILD_BACKEND, BASE_PYTHON_ONLY, extras())).encode())
    return digest.hexdigest()[:12]


def wheels() -> Path:
    """Wheels of the runtime's and operator's locked dependencies, cached by the lock's digest."""
    out = cache_root() / f"wheels-{_lock_key()}"
    if out.is_dir():
        return out
    partial = Path(str(out) + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with steps.timed("pip wheel (image dependencies)"):
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        steps.run(
            [
                *pip,
                "wheel",
                "--quiet",
                "--wheel-dir",
                str(partial),
                "-c",
                "requirements/ci.txt",
                f".[{','.join(extras())}]",
            ],
            cwd=REPO_ROOT,
            timeout=1200,
        )
        steps.run(
            [*pip, "download", "--quiet", "--dest", str(partial), *BUILD_BACKEND, *BASE_PYTHON_ONLY],
            cwd=REPO_ROOT,
            timeout=600,
        )
        # podiq itself is installed from the build context, never from a wheel.
        for own in partial.glob("podiq-*.whl"):
            own.unlink()
        partial.rename(out)
    for stale in cache_root().glob("wheels-*"):
        if stale != out:  # an older lock's
            shutil.rmtree(stale, ignore_errors=True)
    return out


def _stage_wheels() -> None:
    """Puts the wheels in the build context, where the Dockerfiles' --find-links looks."""
    source = wheels()
    shutil.rmtree(WHEELS_IN_CONTEXT, ignore_errors=True)
    WHEELS_IN_CONTEXT.mkdir(parents=True)
    for wheel in source.iterdir():
        try:
            os.link(wheel, WHEELS_IN_CONTEXT / wheel.name)
        except OSError:  # another file system
            shutil.copy2(wheel, WHEELS_IN_CONTEXT / wheel.name)


def build_commands(base_image: str) -> list[list[str]]:
    """The docker build commands of the README's "Try it on kind", with the offline base."""
    offline = ["--build-arg", f"BASE_IMAGE={base_image}", "--build-arg", "PIP_OPTIONS=--no-index"]
    return [
        ["docker", "build", *offline, "-f", "runtime/Dockerfile", "-t", RUNTIME, "."],
        ["docker", "build", *offline, "-f", "operator/Dockerfile", "-t", OPERATOR, "."],
        [
            "docker",
            "build",
            "--build-arg",
            f"RUNTIME_IMAGE={RUNTIME}",
            "-f",
            "tests/e2e/Dockerfile.tasks",
            "-t",
            TASKS,
            ".",
        ],
    ]


def build() -> tuple[str, ...]:
    """Builds the runtime, operator and test-task images (docker's layer cache makes repeats quick)."""
    base_image = base.build()
    _stage_wheels()
    try:
        for cmd in build_commands(base_image):
            with steps.timed(" ".join(cmd[-3:])):
                steps.run(cmd, cwd=REPO_ROOT, timeout=1200, env=dict(os.environ, DOCKER_BUILDKIT="0"))
    finally:
        shutil.rmtree(WHEELS_IN_CONTEXT, ignore_errors=True)
    return RUNTIME, OPERATOR, TASKS
