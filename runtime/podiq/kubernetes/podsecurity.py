"""The restricted security settings every podiq pod runs with (task pods and schedule firings).

Non-root with a fixed uid, no privilege escalation, all capabilities dropped, a read-only root
filesystem and the runtime's default seccomp profile: the Pod Security Standards' "restricted" level.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RUNTIME_UID", "container_security_context", "pod_security_context"]

#: The uid and gid podiq's pods run as.
RUNTIME_UID = 10001


def pod_security_context() -> dict[str, Any]:
    """The pod-level ``securityContext``."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUNTIME_UID,
        "runAsGroup": RUNTIME_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """The container-level ``securityContext``."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUNTIME_UID,
        "runAsGroup": RUNTIME_UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
