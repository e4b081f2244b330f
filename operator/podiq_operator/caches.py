"""What the operator has seen through its watches: TaskRuns, their Jobs, the Jobs' Pods.

Each kind's events come separately; this joins them by TaskRun, so a Job or Pod event can
reconcile its TaskRun without an API read. Each TaskRun body is parsed into its model once
(:meth:`Cache.taskrun`), however often the reconciler and the pool keeper read it.
Everything here is in memory and rebuilt from the initial listings after a restart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from podiq.kubernetes.resources import KIND, TaskRun
from podiq_operator.jobs import attempt_of

__all__ = ["Cache", "Key", "newer", "slim"]

Key = tuple[str, str]
"""(namespace, name)."""

#: The label the Job controller puts on its pods (and its pre-1.27 spelling).
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


def key_of(body: Mapping[str, Any]) -> Key:
    """An object's (namespace, name)."""
    meta = body.get("metadata", {})
    return meta.get("namespace") or "default", meta.get("name") or ""


def slim(body: Mapping[str, Any], *, spec: bool = True) -> dict[str, Any]:
    """The parts of an object the operator reads: no managedFields, and no spec for Jobs and
    Pods (their pod templates are most of their size). Keeps memory flat with many runs."""
    kept = {k: v for k, v in body.items() if spec or k != "spec"}
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping) and "managedFields" in metadata:
        kept["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    return kept


def newer(candidate: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether ``candidate`` is not older than ``current``.

    resourceVersions are opaque by contract, but etcd-backed servers issue increasing
    integers; comparing them keeps a late watch event from undoing our own newer write.
    A body without one (as the operator sent it) never replaces one the server returned.
    Otherwise, when either is not an integer, the candidate wins (the watch is the authority).
    """
    if current is None:
        return True
    new_rv = candidate.get("metadata", {}).get("resourceVersion")
    old_rv = current.get("metadata", {}).get("resourceVersion")
    if new_rv is None and old_rv is not None:
        return False
    try:
        return int(new_rv) >= int(old_rv or 0)
    except (TypeError, ValueError):
        return True


@dataclasses.dataclass
class Cache:
    taskruns: dict[Key, dict[str, Any]] = dataclasses.field(default_factory=dict)
    jobs: dict[Key, dict[int, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    """TaskRun key → attempt → Job."""
    job_owners: dict[Key, Key] = dataclasses.field(default_factory=dict)
    """Job key → TaskRun key."""
    pods: dict[Key, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """Job key → its newest Pod."""
    failed_creates: dict[Key, str] = dataclasses.field(default_factory=dict)
    """Job key → message of its last FailedCreate event (quota, limit range, admission)."""
    _parsed: dict[Key, tuple[dict[str, Any], TaskRun]] = dataclasses.field(default_factory=dict, repr=False)
    """TaskRun key → (the body in ``taskruns`` it was parsed from, the model)."""

    # --- TaskRuns ---

    def put_taskrun(self, body: Mapping[str, Any]) -> Key:
        key = key_of(body)
        if newer(body, self.taskruns.get(key)):
            self.taskruns[key] = slim(body)
            self._parsed.pop(key, None)
        return key

    def taskrun(self, key: Key) -> TaskRun | None:
        """The model of the TaskRun body held for ``key``, parsed once per body (None if none is held).

        Validation is the dearest part of reading a TaskRun, and the pool keeper reads every
        unfinished one each round. The memo is tied to the body object itself, so a body put in
        ``taskruns`` any other way is parsed afresh. Finished runs are memoised too: the last
        events of their Jobs and pods reconcile them several times. The model is shared: callers
        copy before changing it (the status transitions do). Raises pydantic's ValidationError
        for a malformed body, each time it is asked for.
        """
        body = self.taskruns.get(key)
        if body is None:
            self._parsed.pop(key, None)
            return None
        memo = self._parsed.get(key)
        if memo is not None and memo[0] is body:
            return memo[1]
        run = TaskRun.from_api(body)
        self._parsed[key] = body, run
        return run

    def forget_taskrun(self, key: Key) -> None:
        self.taskruns.pop(key, None)
        self._parsed.pop(key, None)
        for job in self.jobs.pop(key, {}).values():
            job_key = key_of(job)
            self.job_owners.pop(job_key, None)
            self.pods.pop(job_key, None)
            self.failed_creates.pop(job_key, None)

    # --- Jobs ---

    def put_job(self, body: Mapping[str, Any]) -> Key | None:
        """Remember a Job; returns its TaskRun's key when the Job tells something new.

        None when no TaskRun controls it, or when only its metadata moved: the operator's
        own create comes back from the watch like that, and needs no reconciliation.
        """
        owner = _controller(body, KIND)
        attempt = attempt_of(dict(body))
        if owner is None or attempt is None:
            return None
        job_key = key_of(body)
        key = (job_key[0], owner)
        jobs = self.jobs.setdefault(key, {})
        current = jobs.get(attempt)
        self.job_owners[job_key] = key
        if not newer(body, current):
            return None
        jobs[attempt] = slim(body, spec=False)
        if current is not None and (current.get("status") or {}) == (body.get("status") or {}):
            return None
        return key

    def forget_job(self, body: Mapping[str, Any]) -> Key | None:
        job_key = key_of(body)
        key = self.job_owners.pop(job_key, None)
        attempt = attempt_of(dict(body))
        if key is not None and attempt is not None:
            self.jobs.get(key, {}).pop(attempt, None)
        self.pods.pop(job_key, None)
        self.failed_creates.pop(job_key, None)
        return key

    def latest_attempt(self, key: Key) -> int:
        return max(self.jobs.get(key, {}), default=0)

    def job(self, key: Key, attempt: int) -> dict[str, Any] | None:
        return self.jobs.get(key, {}).get(attempt)

    # --- Pods and Job events ---

    def put_pod(self, body: Mapping[str, Any], *, deleted: bool = False) -> Key | None:
        """Remember (or forget) a Job's pod; returns the TaskRun's key if the Job is known."""
        labels = body.get("metadata", {}).get("labels") or {}
        job = next((labels[name] for name in JOB_NAME_LABELS if name in labels), None)
        if job is None:
            return None
        job_key = (key_of(body)[0], job)
        current = self.pods.get(job_key)
        if deleted:
            if current is not None and key_of(current) == key_of(body):
                # Keep the last state: a deleted pod's exit code still tells how the attempt ended.
                self.pods[job_key] = {**current, "metadata": {**current["metadata"], "deleted": True}}
        elif current is None or key_of(current) != key_of(body) or newer(body, current):
            # A Job with backoffLimit 0 has one pod; a replacement (after eviction) is newer.
            self.pods[job_key] = slim(body, spec=False)
        return self.job_owners.get(job_key)

    def pod(self, key: Key, attempt: int) -> dict[str, Any] | None:
        job = self.job(key, attempt)
        return self.pods.get(key_of(job)) if job is not None else None

    def put_failed_create(self, namespace: str, job: str, message: str) -> Key | None:
        job_key = (namespace, job)
        self.failed_creates[job_key] = message
        return self.job_owners.get(job_key)

    def failed_create(self, key: Key, attempt: int) -> str | None:
        job = self.job(key, attempt)
        return self.failed_creates.get(key_of(job)) if job is not None else None


def _controller(body: Mapping[str, Any], kind: str) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return ref.get("name")  # type: ignore[no-any-return]  # owner names are strings
    return None
