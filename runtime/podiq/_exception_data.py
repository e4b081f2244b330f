"""Exceptions as data, so they cross process boundaries without pickle."""

from __future__ import annotations

import sys
import traceback as traceback_module
from typing import Any

import pydantic_core
from pydantic import BaseModel, Field

from podiq.exceptions import RemoteTaskError


class ExceptionData(BaseModel):
    """A task's exception as plain data: type, module, message, args, attributes, traceback."""

    type: str
    module: str
    message: str
    args: list[Any] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> ExceptionData:
        return cls(
            type=type(exc).__qualname__,
            module=type(exc).__module__,
            message=str(exc),
            args=[_plain(arg) for arg in exc.args],
            attributes={k: _plain(v) for k, v in vars(exc).items() if not k.startswith("_")},
            traceback="".join(traceback_module.format_exception(exc)),
        )

    def to_exception(self) -> BaseException:
        """Rebuild the exception.

        Only types from modules this process has already imported are rebuilt: importing a
        module named by remote data would run its code. Anything else becomes RemoteTaskError,
        which keeps the type's name and the traceback.
        """
        exc_type = _importable_exception_type(self.module, self.type)
        exc = _construct(exc_type, self.args, self.attributes) if exc_type is not None else None
        if exc is None:
            return RemoteTaskError(self.type, self.module, self.message, self.traceback)
        if self.traceback:
            exc.add_note(f"Remote traceback:\n{self.traceback.rstrip()}")
        return exc


def _plain(value: Any) -> Any:
    try:
        return pydantic_core.to_jsonable_python(value)
    except Exception:
        return repr(value)


def _importable_exception_type(module_name: str, qualname: str) -> type[BaseException] | None:
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    # Only ordinary exceptions are raised again in the client: SystemExit, KeyboardInterrupt and
    # the like would stop the caller's program, and StopIteration cannot leave a coroutine.
    if isinstance(obj, type) and issubclass(obj, Exception) and not issubclass(obj, _NOT_REBUILT):
        return obj
    return None


_NOT_REBUILT = (StopIteration, StopAsyncIteration)


def _construct(exc_type: type[BaseException], args: list[Any], attributes: dict[str, Any]) -> BaseException | None:
    try:
        exc = exc_type(*args)
    except Exception:
        # Keyword-only constructors cannot be called with the stored args: build the object
        # without __init__ and restore its state instead.
        try:
            exc = exc_type.__new__(exc_type, *args)
        except Exception:
            return None
    # The constructor may have formatted its arguments into a message: keep the original args.
    exc.args = tuple(args)
    for name, value in attributes.items():
        try:
            setattr(exc, name, value)
        except Exception:
            pass
    return exc
