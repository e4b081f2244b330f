"""podiq on Kubernetes: KubernetesBroker and KubernetesScheduleSource for clients, and the
TaskRun resource models shared by the client, the operator and the runtime."""

from podiq.kubernetes.broker import KubernetesBroker, KubernetesResultBackend
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
    "KubernetesBroker",
    "KubernetesResultBackend",
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
