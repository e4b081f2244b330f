"""What the operator tells the runtime, through the pod's environment."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field, ValidationError

from podiq._problems import problems
from podiq.kubernetes.storage import ENV_REDIS_URL, StoreSettings

# A pool worker's settings (podiq.runtime.worker), set by the operator on its Deployment.
ENV_POOL = "PODIQ_POOL"
ENV_NAMESPACE = "PODIQ_POOL_NAMESPACE"
ENV_CONCURRENCY = "PODIQ_CONCURRENCY"
ENV_VISIBILITY_TIMEOUT = "PODIQ_VISIBILITY_TIMEOUT"
ENV_TASKRUN_NAME = "PODIQ_TASKRUN_NAME"
ENV_TASKRUN_NAMESPACE = "PODIQ_TASKRUN_NAMESPACE"
ENV_ATTEMPT = "PODIQ_ATTEMPT"
ENV_POD_NAME = "PODIQ_POD_NAME"
ENV_JOB_NAME = "PODIQ_JOB_NAME"
ENV_IMPORTS = "PODIQ_IMPORTS"
ENV_PROGRESS_INTERVAL = "PODIQ_PROGRESS_INTERVAL"

#: Variables the operator sets; a TaskRun's own env cannot override them (nor point the runtime at another Redis).
RESERVED = frozenset(
    {
        ENV_TASKRUN_NAME,
        ENV_TASKRUN_NAMESPACE,
        ENV_ATTEMPT,
        ENV_JOB_NAME,
        ENV_POD_NAME,
        ENV_REDIS_URL,
        *StoreSettings().to_env(),
    }
)


class RuntimeEnvironment(BaseModel):
    """The runtime's settings, read from PODIQ_* variables."""

    taskrun_name: str = Field(min_length=1)
    namespace: str = Field(min_length=1)
    attempt: int = Field(ge=1)
    job_name: str | None = None
    pod_name: str | None = None
    imports: list[str] = Field(default_factory=list, description="Modules to import before looking up the task.")
    progress_interval: float = Field(default=1.0, ge=0, description="Seconds between progress writes at most.")

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> RuntimeEnvironment:
        env = os.environ if environ is None else environ
        try:
            return cls(
                taskrun_name=env.get(ENV_TASKRUN_NAME, ""),
                namespace=env.get(ENV_TASKRUN_NAMESPACE, ""),
                attempt=env.get(ENV_ATTEMPT, "0"),  # type: ignore[arg-type]  # pydantic converts the string
                job_name=env.get(ENV_JOB_NAME) or None,
                pod_name=env.get(ENV_POD_NAME) or env.get("HOSTNAME"),
                imports=[m.strip() for m in env.get(ENV_IMPORTS, "").split(",") if m.strip()],
                progress_interval=env.get(ENV_PROGRESS_INTERVAL, "1.0"),  # type: ignore[arg-type]  # pydantic converts the string
            )
        except ValidationError as exc:
            raise ValueError(
                f"the pod's environment is incomplete ({problems(exc)}). The operator sets "
                f"{ENV_TASKRUN_NAME}, {ENV_TASKRUN_NAMESPACE} and {ENV_ATTEMPT}; run tasks through a TaskRun."
            ) from None
