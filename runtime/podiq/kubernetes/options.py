"""Per-task and per-call Kubernetes options, carried in labels like every taskiq option."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from podiq._labels import TaskOptions
from podiq._problems import problems
from podiq.exceptions import InvalidArgumentsError
from podiq.kubernetes.resources import EnvVar, ResourceRequirements, TaskRunSpec


class KubernetesOptions(BaseModel):
    """Labels that shape the TaskRun: `@broker.task(image=..., resources=..., env=...)` or
    `task.kicker().with_labels(...)`. Unset options fall back to the broker's defaults."""

    model_config = ConfigDict(extra="ignore")

    image: str | None = None
    resources: ResourceRequirements | None = None
    env: dict[str, str] | None = None
    service_account: str | None = None
    queue_name: str | None = None
    ttl: int | None = None
    not_before: datetime | None = None
    pool: str | None = None
    pending_deadline: int | None = None
    """Seconds an attempt may wait for its pod to start before the run ends Failed."""

    def merged_over(self, defaults: KubernetesOptions) -> KubernetesOptions:
        merged = defaults.model_copy(update=self.model_dump(exclude_none=True))
        if defaults.env and self.env:
            merged.env = {**defaults.env, **self.env}
        return merged


def taskrun_spec(
    task_name: str, labels: dict[str, Any], args: list[Any], kwargs: dict[str, Any], defaults: KubernetesOptions
) -> TaskRunSpec:
    """The TaskRun spec for one call; raises InvalidArgumentsError naming a bad option."""
    try:
        options = KubernetesOptions.model_validate(labels).merged_over(defaults)
        execution = TaskOptions.from_labels(labels)
        return TaskRunSpec(
            task_name=task_name,
            args=args,
            kwargs=kwargs,
            labels=labels,
            image=options.image,
            resources=options.resources,
            env=[EnvVar(name=k, value=v) for k, v in (options.env or {}).items()] or None,
            service_account_name=options.service_account,
            queue_name=options.queue_name,
            ttl_seconds_after_finished=options.ttl,
            not_before=options.not_before,
            pending_deadline_seconds=options.pending_deadline,
            timeout_seconds=execution.timeout,
            retry_on_error=execution.retry_on_error,
            max_retries=execution.max_retries,
            pool=options.pool,
        )
    except ValidationError as exc:
        raise InvalidArgumentsError(f"Cannot make a TaskRun for {task_name!r}: {problems(exc)}.") from None
