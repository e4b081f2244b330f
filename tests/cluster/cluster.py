"""The handle tests get: paths, environment and kubectl/helm helpers."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .controlplane import ControlPlane

T = TypeVar("T")


def client_env(bin_dir: Path, kubeconfig: Path, state_dir: Path) -> dict[str, str]:
    """Environment for kubectl/helm and anything else that talks to the cluster."""
    env = dict(os.environ)
    env["KUBECONFIG"] = str(kubeconfig)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    # Keep helm's repository cache and config out of the user's home.
    for var, sub in (("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"), ("HELM_DATA_HOME", "data")):
        env[var] = str(state_dir / "helm" / sub)
    return env


@dataclass
class Cluster:
    control_plane: ControlPlane

    @property
    def kubeconfig(self) -> Path:
        assert self.control_plane.kubeconfig is not None
        return self.control_plane.kubeconfig

    @property
    def bin_dir(self) -> Path:
        return self.control_plane.bin_dir

    @property
    def state_dir(self) -> Path:
        return self.control_plane.state_dir

    @property
    def api_url(self) -> str:
        return self.control_plane.api_url

    @property
    def env(self) -> dict[str, str]:
        return client_env(self.bin_dir, self.kubeconfig, self.state_dir)

    def _run(
        self, tool: str, args: tuple[str, ...], *, check: bool, timeout: float, input: str | None
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(self.bin_dir / tool), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess:
        return self._run("kubectl", args, check=check, timeout=timeout, input=input)

    def helm(
        self, *args: str, check: bool = True, timeout: float = 180, input: str | None = None
    ) -> subprocess.CompletedProcess:
        return self._run("helm", args, check=check, timeout=timeout, input=input)

    def get(self, *args: str) -> Any:
        """``kubectl get ... -o json``, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: str, *args: str) -> None:
        self.kubectl("apply", "-f", "-", *args, input=manifest)

    @staticmethod
    def wait_for(what: str, fn: Callable[[], T | None], *, timeout: float = 60, interval: float = 0.5) -> T:
        """Poll ``fn`` until it returns something truthy; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = fn()
                if value:
                    return value
            except (AssertionError, subprocess.SubprocessError, ValueError, KeyError) as exc:
                last_error = exc
            time.sleep(interval)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}" + (f"; last error: {last_error}" if last_error else "")
        )

    def component_logs(self, lines: int = 30) -> str:
        out = []
        for path in sorted(self.control_plane.logs.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(out)
