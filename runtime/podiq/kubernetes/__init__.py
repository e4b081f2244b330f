"""podiq on Kubernetes: the TaskRun resource shared by the client, the operator and the runtime.

Importing this package needs only pydantic; the API client parts need the
``kubernetes`` extra (kubernetes-asyncio).
"""

from podiq.kubernetes.exitcodes import ExitCode
from podiq.kubernetes.resources import (
    API_VERSION,
    GROUP,
    KIND,
    MAX_INLINE_RESULT_BYTES,
    PLURAL,
    VERSION,
    Condition,
    ConditionStatus,
    EnvVar,
    InfrastructureError,
    Phase,
    Progress,
    Reason,
    ResourceRequirements,
    ResultTooLargeError,
    TaskRun,
    TaskRunSpec,
    TaskRunStatus,
    encode_result,
    to_api,
)
from podiq.kubernetes.schedules import KubernetesScheduleSource

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "MAX_INLINE_RESULT_BYTES",
    "PLURAL",
    "VERSION",
    "Condition",
    "ConditionStatus",
    "EnvVar",
    "ExitCode",
    "InfrastructureError",
    "KubernetesScheduleSource",
    "Phase",
    "Progress",
    "Reason",
    "ResourceRequirements",
    "ResultTooLargeError",
    "TaskRun",
    "TaskRunSpec",
    "TaskRunStatus",
    "encode_result",
    "to_api",
]
