"""The TaskPool resource: a pool of warm runtime workers that run TaskRuns without a pod start.

A TaskPool (``podiq.io/v1alpha1``, namespaced) declares the workers' image, environment,
resources and service account, how many may run (``minReplicas`` to ``maxReplicas``, zero
allowed), how many runs each serves at once, and the task modules they import at start.
The operator keeps a Deployment of workers for each pool and scales it from the pool's
backlog; TaskRuns with ``spec.pool`` are dispatched to it through the pool's Redis stream
(see :mod:`podiq.kubernetes.dispatch`) instead of running as Jobs.

The CRD in ``crds/taskpool.yaml`` is generated from these models by :mod:`podiq.kubernetes.crd`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator

from podiq.kubernetes.resources import _DNS_SUBDOMAIN, DNS_LABEL, EnvVar, ObjectMeta, ResourceRequirements, _Model

__all__ = [
    "POOL_KIND",
    "POOL_PLURAL",
    "POOL_SHORT_NAMES",
    "POOL_SINGULAR",
    "PoolCondition",
    "TaskPool",
    "TaskPoolSpec",
    "TaskPoolStatus",
]

POOL_KIND = "TaskPool"
POOL_PLURAL = "taskpools"
POOL_SINGULAR = "taskpool"
POOL_SHORT_NAMES = ("pqp",)
#: The longest pool name: it names the Deployment and prefixes its pods' names.
POOL_NAME_MAX = 40


class TaskPoolSpec(_Model):
    """What the pool's workers run with and how many there may be."""

    image: str | None = Field(
        default=None, max_length=1024, description="The runtime image; the operator's default if absent."
    )
    env: list[EnvVar] | None = Field(default=None, max_length=256)
    resources: ResourceRequirements | None = None
    service_account_name: str | None = Field(default=None, pattern=_DNS_SUBDOMAIN, max_length=253)
    min_replicas: int = Field(
        default=0, strict=True, ge=0, le=1000, description="Workers kept even when idle (0 allowed)."
    )
    max_replicas: int = Field(
        default=4, strict=True, ge=1, le=1000, description="Workers at most, however long the backlog."
    )
    concurrency: int = Field(default=8, strict=True, ge=1, le=1000, description="Runs one worker serves at once.")
    imports: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Task modules each worker imports at start.",
    )
    visibility_timeout_seconds: int = Field(
        default=30,
        strict=True,
        ge=2,
        le=86400,
        description="A claimed run whose worker stopped answering for this long is reclaimed as a new attempt.",
    )
    claim_deadline_seconds: int = Field(
        default=600,
        strict=True,
        ge=5,
        le=86400,
        description="A run no worker claimed for this long fails with reason NotClaimed.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> TaskPoolSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) is above maxReplicas ({self.max_replicas}).")
        return self


class PoolCondition(_Model):
    """The ``Ready`` condition: False with a reason (``InvalidSpec``, ``InvalidName``) when the
    operator cannot keep the pool, and a message that says what to change."""

    type: str = Field(default="Ready", max_length=64)
    status: str = Field(pattern="^(True|False|Unknown)$")
    reason: str = Field(max_length=64)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str | None = Field(default=None, max_length=64)


class TaskPoolStatus(_Model):
    """What the operator observed: the workers asked for and the backlog it scaled from."""

    conditions: list[PoolCondition] = Field(default_factory=list, max_length=8)

    replicas: int = Field(default=0, strict=True, ge=0, description="Workers the operator asked the Deployment for.")
    backlog: int = Field(default=0, strict=True, ge=0, description="Runs waiting in the stream, not yet claimed.")
    busy: int = Field(default=0, strict=True, ge=0, description="Runs claimed and not yet finished.")
    deployment_name: str | None = Field(default=None, max_length=63)
    observed_generation: int | None = Field(default=None, ge=0)


class TaskPool(_Model):
    """A whole TaskPool object, as the API server stores it."""

    api_version: str = "podiq.io/v1alpha1"
    kind: str = POOL_KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TaskPoolSpec = Field(default_factory=TaskPoolSpec)
    status: TaskPoolStatus = Field(default_factory=TaskPoolStatus)

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> TaskPool:
        return cls.model_validate(dict(body))

    @property
    def name(self) -> str:
        assert self.metadata.name, "a TaskPool read from the API has a name"
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"


POOL_NAME_PATTERN = DNS_LABEL
