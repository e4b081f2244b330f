"""A task's dependency tree, checked when the task is declared.

taskiq-dependencies resolves `TaskiqDepends()` parameters when a task runs. Two mistakes it
cannot report there: a cycle (the graph builder never returns, freezing the event loop) and a
function whose type hints do not resolve (its dependencies are silently left out, so the task
gets the `TaskiqDepends()` marker instead of a value). Both are refused here instead.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from taskiq_dependencies.dependency import Dependency

from podiq.exceptions import BrokerError


def check_dependencies(func: Callable[..., Any], task_name: str) -> None:
    _walk(func, [], set(), task_name)


def _walk(target: Any, path: list[Any], done: set[int], task_name: str) -> None:
    if any(target is seen for seen in path):
        chain = " -> ".join(_label(t) for t in [*path[path.index(target) :], target])
        raise BrokerError(
            f"Task {task_name!r} has a dependency cycle: {chain}. Break the cycle; a dependency "
            "cannot depend on itself, directly or through others."
        )
    if id(target) in done:
        return
    function = target.__init__ if inspect.isclass(target) else target
    if not (inspect.isfunction(function) or inspect.ismethod(function)):
        function = getattr(type(target), "__call__", None) if not inspect.isclass(target) else None  # noqa: B004 - the type's __call__ itself is inspected
    if function is None or not callable(function):
        return
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # builtins without a signature have no dependencies
        return
    dependencies = {name: p for name, p in parameters.items() if is_dependency(p.default)}
    if not dependencies:
        done.add(id(target))
        return
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - any error of user annotations becomes one BrokerError
        raise BrokerError(
            f"Task {task_name!r}: the type hints of {_label(target)} cannot be resolved ({type(exc).__name__}: "
            f"{exc}), so its dependencies {sorted(dependencies)} could not be injected. Import the names its "
            "annotations use at module level (not only under TYPE_CHECKING)."
        ) from None
    path.append(target)
    for name, parameter in dependencies.items():
        dependency = parameter.default.dependency
        if dependency is None:
            dependency = _strip_annotated(hints.get(name))
        if dependency is not None:
            _walk(typing.get_origin(dependency) or dependency, path, done, task_name)
    path.pop()
    done.add(id(target))


def _strip_annotated(hint: Any) -> Any:
    if typing.get_origin(hint) is typing.Annotated:
        return hint.__origin__
    return hint


def _label(target: Any) -> str:
    return getattr(target, "__qualname__", None) or type(target).__qualname__


def is_dependency(default: Any) -> bool:
    return isinstance(default, Dependency)
