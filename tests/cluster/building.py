"""Build the pinned Kubernetes, etcd and helm binaries from source with Go.

Each component is built into its own directory under the cache, keyed by its
version, so a version bump rebuilds only that component.  A combined ``bin``
directory of symlinks is what the rest of the harness uses.

Kubernetes and etcd cannot be built with ``go install pkg@version`` because
their go.mod files replace sibling modules with relative paths.  We generate a
throw-away wrapper module that requires the release and replaces each of those
sibling modules with its published tag instead; the replace list is read from
the release's own go.mod so it never drifts from upstream.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Pinned versions.  Kubernetes' staging modules (k8s.io/api, client-go, ...)
# are tagged v0.<minor>.<patch> for release v1.<minor>.<patch>.
KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"  # newest 3.6.x on the module proxy
HELM_VERSION = "v3.22.0"  # newest 3.22.x on the module proxy

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
# A real node's commands (the kind tier's node image): a component of their own, so that adding
# them rebuilds nothing above; the Go build cache shares the packages they have in common.
KUBERNETES_NODE_COMMANDS = ("kubelet", "kubeadm", "kube-proxy")
ALL_BINARIES = (*KUBERNETES_COMMANDS, "etcd", "helm")

# The wrapper modules declare this Go version; it must not be newer than the
# releases' own ``go`` lines allow and not newer than the local toolchain.
WRAPPER_GO_VERSION = "1.26.0"


class BuildError(RuntimeError):
    """A build step failed; the message says which and where the log is."""


def cache_root() -> Path:
    base = os.environ.get("PODIQ_CACHE_DIR") or os.path.join(Path.home(), ".cache", "podiq")
    return Path(base) / "k8s"


def version_key() -> str:
    return f"kubernetes-{KUBERNETES_VERSION}_etcd-{ETCD_VERSION}_helm-{HELM_VERSION}"


def bin_dir() -> Path:
    return cache_root() / version_key() / "bin"


def is_built() -> bool:
    d = bin_dir()
    return all(os.access(d / name, os.X_OK) for name in ALL_BINARIES)


@dataclass
class _Component:
    name: str
    version: str
    binaries: tuple[str, ...]

    @property
    def dir(self) -> Path:
        return cache_root() / f"{self.name}-{self.version}"

    @property
    def out(self) -> Path:
        return self.dir / "bin"

    def done(self) -> bool:
        return all(os.access(self.out / b, os.X_OK) for b in self.binaries)


def _go_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    # Static binaries; no C toolchain needed and link is faster.
    env["CGO_ENABLED"] = "0"
    # Never switch toolchains: the releases' "toolchain" lines would otherwise
    # make go try to fetch a newer compiler.
    env["GOTOOLCHAIN"] = "local"
    env["GOFLAGS"] = "-mod=mod -buildvcs=false"
    env.setdefault("GOPATH", str(Path.home() / "go"))
    env["TMPDIR"] = str(tmp)
    return env


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path, timeout: float) -> str:
    """Run ``cmd``, appending its output to ``log``; raise BuildError on failure."""
    with log.open("a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=fh, text=True, timeout=timeout)
        except FileNotFoundError as exc:
            raise BuildError(f"{cmd[0]} not found: install Go (>= {WRAPPER_GO_VERSION})") from exc
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"timed out after {timeout:.0f}s: {' '.join(cmd)}; see {log}") from exc
        fh.write(proc.stdout)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise BuildError(f"failed ({proc.returncode}): {' '.join(cmd)}\n  log: {log}\n  " + "\n  ".join(tail))
    return proc.stdout


def _published_gomod(module: str, version: str, env: dict[str, str], cwd: Path, log: Path) -> dict:
    """Download ``module@version`` and return its go.mod parsed by ``go mod edit -json``."""
    info = json.loads(
        _run(["go", "mod", "download", "-json", f"{module}@{version}"], cwd=cwd, env=env, log=log, timeout=900)
    )
    if info.get("Error"):
        raise BuildError(f"{module}@{version}: {info['Error']}")
    return json.loads(_run(["go", "mod", "edit", "-json", info["GoMod"]], cwd=cwd, env=env, log=log, timeout=60))


def _sibling_replaces(gomod: dict, sibling_version: str) -> list[tuple[str, str]]:
    """Turn the release's path replaces (``=> ./staging/...``) into version replaces."""
    out = []
    for rep in gomod.get("Replace") or []:
        old, new = rep["Old"]["Path"], rep["New"]["Path"]
        if not new.startswith(("./", "../")) or rep["New"].get("Version"):
            continue
        if "FORBIDDEN" in new:  # etcd's guard against accidental imports
            continue
        out.append((old, sibling_version))
    if not out:
        raise BuildError(f"no relative replaces found in {gomod['Module']['Path']} go.mod")
    return out


def _write_wrapper(src: Path, module: str, version: str, replaces: list[tuple[str, str]]) -> None:
    src.mkdir(parents=True, exist_ok=True)
    lines = [
        "// Generated by tests/cluster/building.py; safe to delete.",
        f"module podiq.test/build/{module.replace('/', '_')}",
        "",
        f"go {WRAPPER_GO_VERSION}",
        "",
        f"require {module} {version}",
        "",
        "replace (",
        *(f"\t{old} => {old} {ver}" for old, ver in replaces),
        ")",
        "",
    ]
    (src / "go.mod").write_text("\n".join(lines))
    # A fresh go.sum is filled in by -mod=mod during the build.
    (src / "go.sum").touch()


def _build_wrapped(
    comp: _Component, module: str, packages: list[str], sibling_version: str, ldflags: list[str], log: Path
) -> None:
    src = comp.dir / "src"
    tmp = comp.dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = _go_env(tmp)
    gomod = _published_gomod(module, comp.version, env, tmp, log)
    _write_wrapper(src, module, comp.version, _sibling_replaces(gomod, sibling_version))
    staging = comp.dir / "bin.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    # One invocation for all commands so shared packages compile once.
    _run(
        ["go", "build", "-trimpath", "-ldflags", " ".join(["-s", "-w", *ldflags]), "-o", str(staging) + "/", *packages],
        cwd=src,
        env=env,
        log=log,
        timeout=4800,
    )
    shutil.rmtree(comp.out, ignore_errors=True)
    staging.rename(comp.out)
    shutil.rmtree(tmp, ignore_errors=True)


def _kubernetes_ldflags() -> list[str]:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    values = {
        "gitVersion": KUBERNETES_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        # No commit hash is published on the module proxy; record the tag.
        "gitCommit": KUBERNETES_VERSION,
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = []
    for pkg in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
        flags += [f"-X {pkg}.{k}={v}" for k, v in values.items()]
    return flags


def _build_kubernetes(
    log: Path, name: str = "kubernetes", commands: tuple[str, ...] = KUBERNETES_COMMANDS
) -> _Component:
    comp = _Component(name, KUBERNETES_VERSION, commands)
    if not comp.done():
        staging_tag = "v0." + KUBERNETES_VERSION.split(".", 1)[1]
        _build_wrapped(
            comp,
            "k8s.io/kubernetes",
            [f"k8s.io/kubernetes/cmd/{c}" for c in commands],
            staging_tag,
            _kubernetes_ldflags(),
            log,
        )
    return comp


def _node_component() -> _Component:
    return _Component("kubernetes-node", KUBERNETES_VERSION, KUBERNETES_NODE_COMMANDS)


def node_bin_dir() -> Path:
    return _node_component().out


def build_node(verbose: bool = True) -> Path:
    """Build kubelet, kubeadm and kube-proxy if missing; return their bin directory."""
    comp = _node_component()
    if comp.done():
        return comp.out
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    # Its own lock: it builds into its own directories, alongside a build of the others.
    with (root / ".build-node.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not comp.done():
            t0 = time.monotonic()
            if verbose:
                print(
                    f"building {', '.join(comp.binaries)} (log: {root / 'build-node.log'}) ...",
                    file=sys.stderr,
                    flush=True,
                )
            _build_kubernetes(root / "build-node.log", comp.name, comp.binaries)
            if verbose:
                print(f"  done in {time.monotonic() - t0:.0f}s", file=sys.stderr, flush=True)
    return comp.out


def _build_etcd(log: Path) -> _Component:
    comp = _Component("etcd", ETCD_VERSION, ("etcd",))
    if not comp.done():
        # The server module's root package is etcd's main; its siblings
        # (api, client, pkg) are released under the same tag.
        _build_wrapped(comp, "go.etcd.io/etcd/server/v3", ["go.etcd.io/etcd/server/v3"], ETCD_VERSION, [], log)
        # go build names the binary after the module's last non-version path
        # element ("server"); etcd's own release calls it etcd.
        (comp.out / "server").rename(comp.out / "etcd")
    return comp


def _build_helm(log: Path) -> _Component:
    comp = _Component("helm", HELM_VERSION, ("helm",))
    if not comp.done():
        tmp = comp.dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env = _go_env(tmp)
        env.pop("GOFLAGS")  # -mod=mod is not allowed outside a module
        env["GOBIN"] = str(comp.dir / "bin.partial")
        ldflags = (
            f"-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"
            " -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
        )
        # helm's go.mod has no replaces, so a plain versioned install works.
        _run(
            ["go", "install", "-trimpath", "-ldflags", ldflags, f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"],
            cwd=tmp,
            env=env,
            log=log,
            timeout=2400,
        )
        shutil.rmtree(comp.out, ignore_errors=True)
        (comp.dir / "bin.partial").rename(comp.out)
        shutil.rmtree(tmp, ignore_errors=True)
    return comp


def build(verbose: bool = True) -> Path:
    """Build whatever is missing and return the combined bin directory."""
    if is_built():
        return bin_dir()
    if shutil.which("go") is None:
        raise BuildError("the 'go' command is not on PATH; Go >= 1.26 is needed to build the test cluster")
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    # Two test sessions starting at once must not build into the same directories.
    with (root / ".build.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if verbose:
                print("another build is running; waiting for it ...", file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if is_built():
            return bin_dir()
        return _build_locked(root, verbose)


def _build_locked(root: Path, verbose: bool) -> Path:
    log = root / "build.log"
    started = time.monotonic()
    comps = []
    for step in (_build_kubernetes, _build_etcd, _build_helm):
        t0 = time.monotonic()
        if verbose:
            print(f"building {step.__name__[7:]} (log: {log}) ...", file=sys.stderr, flush=True)
        comps.append(step(log))
        if verbose:
            print(f"  done in {time.monotonic() - t0:.0f}s", file=sys.stderr, flush=True)
    out = bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    for comp in comps:
        for b in comp.binaries:
            link = out / b
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(comp.out / b)
    missing = [b for b in ALL_BINARIES if not os.access(out / b, os.X_OK)]
    if missing:
        raise BuildError(f"build finished but {', '.join(missing)} missing in {out}; see {log}")
    if verbose:
        print(f"built in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return out
