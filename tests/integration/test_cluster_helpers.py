"""The test cluster's pure helpers, without a cluster."""

from __future__ import annotations

from tests.cluster import building
from tests.cluster.logserver import _tail
from tests.cluster.pods import _expand


def test_sibling_replaces_come_from_the_release_go_mod():
    gomod = {
        "Module": {"Path": "k8s.io/kubernetes"},
        "Replace": [
            {"Old": {"Path": "k8s.io/api"}, "New": {"Path": "./staging/src/k8s.io/api"}},
            {"Old": {"Path": "k8s.io/client-go"}, "New": {"Path": "./staging/src/k8s.io/client-go"}},
            {"Old": {"Path": "example.com/pinned"}, "New": {"Path": "example.com/fork", "Version": "v1.2.3"}},
            {"Old": {"Path": "go.etcd.io/etcd"}, "New": {"Path": "./FORBIDDEN_DEPENDENCY"}},
        ],
    }
    assert building._sibling_replaces(gomod, "v0.37.2") == [("k8s.io/api", "v0.37.2"), ("k8s.io/client-go", "v0.37.2")]


def test_version_ldflags_cover_both_version_packages():
    flags = building._kubernetes_ldflags()
    for pkg in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
        assert f"-X {pkg}.gitVersion={building.KUBERNETES_VERSION}" in flags
        assert f"-X {pkg}.gitMinor=37" in flags


def test_dollar_paren_expansion_follows_kubernetes_rules():
    env = {"NAME": "job-1", "EMPTY": ""}
    assert _expand("run $(NAME) now", env) == "run job-1 now"
    assert _expand("$(MISSING) stays", env) == "$(MISSING) stays"
    assert _expand("$$(NAME) is escaped", env) == "$(NAME) is escaped"
    assert _expand("[$(EMPTY)]", env) == "[]"


def test_tail_lines():
    assert _tail(b"a\nb\nc\n", 2) == b"b\nc\n"
    assert _tail(b"a\nb\nc", 1) == b"c"
    assert _tail(b"a\n", 0) == b""
    assert _tail(b"a\nb\n", 10) == b"a\nb\n"
