"""podiq on Kubernetes: KubernetesBroker and KubernetesScheduleSource for clients, the
TaskRun resource models shared by the client, the operator and the runtime, and the Redis
store of values too large for a TaskRun (its errors are in podiq.exceptions)."""

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
from podiq.kubernetes.storage import RedisStore, StoredValue, StoreSettings

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
    "RedisStore",
    "ResourceRequirements",
    "ResultTooLargeError",
    "StoreSettings",
    "StoredValue",
    "TaskRun",
    "TaskRunSpec",
    "TaskRunStatus",
    "encode_result",
    "to_api",
]
