"""taskiq 0.13's import paths under podiq: each name is podiq's own object, and taskiq is not loaded."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import podiq
from podiq._progress_tracker import ProgressTracker
from podiq._receiver import Receiver
from podiq._retries import SimpleRetryMiddleware, SmartRetryMiddleware
from podiq._schedules import validate_interval_value

PATHS: dict[str, dict[str, object]] = {
    "podiq.abc": {"AsyncBroker": podiq.AsyncBroker, "AsyncResultBackend": podiq.AsyncResultBackend},
    "podiq.abc.broker": {"AsyncBroker": podiq.AsyncBroker, "AsyncTaskiqDecoratedTask": podiq.AsyncTaskiqDecoratedTask},
    "podiq.abc.result_backend": {"AsyncResultBackend": podiq.AsyncResultBackend},
    "podiq.abc.middleware": {"TaskiqMiddleware": podiq.TaskiqMiddleware},
    "podiq.abc.schedule_source": {"ScheduleSource": podiq.ScheduleSource},
    "podiq.brokers.inmemory_broker": {
        "InMemoryBroker": podiq.InMemoryBroker,
        "InMemoryResultBackend": podiq.InMemoryResultBackend,
    },
    "podiq.brokers.shared_broker": {"async_shared_broker": podiq.async_shared_broker},
    "podiq.depends.progress_tracker": {"ProgressTracker": ProgressTracker, "TaskProgress": podiq.TaskProgress},
    "podiq.schedule_sources": {},
    "podiq.schedule_sources.label_based": {},
    "podiq.scheduler.scheduler": {"TaskiqScheduler": podiq.TaskiqScheduler},
    "podiq.scheduler.scheduled_task": {"CronSpec": podiq.CronSpec, "ScheduledTask": podiq.ScheduledTask},
    "podiq.scheduler.scheduled_task.validators": {"validate_interval_value": validate_interval_value},
    "podiq.scheduler.created_schedule": {"CreatedSchedule": podiq.CreatedSchedule},
    "podiq.scheduler.merge_functions": {},
    "podiq.middlewares": {"SimpleRetryMiddleware": SimpleRetryMiddleware, "SmartRetryMiddleware": SmartRetryMiddleware},
    "podiq.middlewares.simple_retry_middleware": {"SimpleRetryMiddleware": SimpleRetryMiddleware},
    "podiq.middlewares.smart_retry_middleware": {"SmartRetryMiddleware": SmartRetryMiddleware},
    "podiq.kicker": {"AsyncKicker": podiq.AsyncKicker},
    "podiq.result": {"TaskiqResult": podiq.TaskiqResult},
    "podiq.context": {"Context": podiq.Context},
    "podiq.message": {"TaskiqMessage": podiq.TaskiqMessage, "BrokerMessage": podiq.BrokerMessage},
    "podiq.state": {"TaskiqState": podiq.TaskiqState},
    "podiq.events": {"TaskiqEvents": podiq.TaskiqEvents},
    "podiq.decor": {"AsyncTaskiqDecoratedTask": podiq.AsyncTaskiqDecoratedTask},
    "podiq.task": {"AsyncTaskiqTask": podiq.AsyncTaskiqTask},
    "podiq.funcs": {"gather": podiq.gather},
    "podiq.receiver": {"Receiver": Receiver},
    "podiq.result_backends.dummy": {},
    "podiq.api": {},
    "podiq.acks": {},
    "podiq.cli.scheduler.run": {},
    "podiq.exceptions": {"ResultIsReadyError": podiq.ResultIsReadyError, "UnknownTaskError": podiq.UnknownTaskError},
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_each_path_reexports_podiqs_own_objects(path: str) -> None:
    module = importlib.import_module(path)
    for name, expected in PATHS[path].items():
        assert getattr(module, name) is expected, f"{path}.{name}"
    for name in getattr(module, "__all__", ()):
        member = getattr(module, name)
        assert getattr(member, "__module__", "podiq").startswith("podiq"), f"{path}.{name} comes from elsewhere"


def test_no_path_imports_taskiq() -> None:
    modules = ", ".join(sorted(PATHS))
    code = f"import importlib, sys\nfor m in '{modules}'.split(', '): importlib.import_module(m)\nprint('taskiq' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_top_level_names_taskiq_users_import() -> None:
    for name in ("SimpleRetryMiddleware", "SmartRetryMiddleware", "BrokerMessage", "async_shared_broker"):
        assert name in podiq.__all__
