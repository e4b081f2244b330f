"""Running build steps: logged, bounded in time, failing with the command and the log's tail."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .paths import HERE, cache_root


class KindError(RuntimeError):
    """A prerequisite or a step of the kind tier failed; the message says which and how to fix it."""


def log_path() -> Path:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return root / "build.log"


def run(
    cmd: Sequence[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    capture: bool = False,
) -> str:
    """Run ``cmd``, its output appended to the build log (or returned when ``capture``)."""
    log = log_path()
    with log.open("ab") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n".encode())
        fh.flush()
        try:
            done = subprocess.run(
                list(cmd),
                cwd=cwd,
                env=env,
                input=input,
                timeout=timeout,
                stdout=subprocess.PIPE if capture else fh,
                stderr=fh,
            )
        except FileNotFoundError as exc:
            raise KindError(f"{cmd[0]} not found (needed for: {' '.join(cmd[:3])} ...)") from exc
        except subprocess.TimeoutExpired as exc:
            raise KindError(f"timed out after {timeout:.0f}s: {' '.join(cmd)}; see {log}") from exc
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        raise KindError(f"failed ({done.returncode}): {' '.join(cmd)}\n  log: {log}\n  " + "\n  ".join(tail))
    return done.stdout.decode() if capture else ""


@contextmanager
def timed(what: str) -> Iterator[None]:
    """Prints how long a step took: the figures the cold and warm CI budgets are checked against."""
    print(f"[kind] {what} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    yield
    print(f"[kind] {what}: {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)


def source_key(directory: Path) -> str:
    """A short digest of the files in ``directory``: what a locally built program is cached by."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def go_env(tmp: Path) -> dict[str, str]:
    """Static binaries with the local Go, never switching toolchains."""
    env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-buildvcs=false", TMPDIR=str(tmp))
    env.setdefault("GOPATH", str(Path.home() / "go"))
    return env


def program_path(name: str) -> Path:
    """Where the small program ``name`` of this directory is cached, by its source's digest."""
    return cache_root() / "tools" / f"{name}-{source_key(HERE / name)}" / name


def local_program(name: str, timeout: float = 600) -> Path:
    """A program of this directory (the pause container, the runc wrapper, CoreDNS), built static."""
    source = HERE / name
    out = program_path(name)
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / "tmp"
        tmp.mkdir(exist_ok=True)
        run(
            ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out) + ".partial", "."],
            cwd=source,
            env=go_env(tmp),
            timeout=timeout,
        )
        os.rename(str(out) + ".partial", out)
        shutil.rmtree(tmp, ignore_errors=True)
    return out
