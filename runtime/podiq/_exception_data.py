"""Exceptions as data, so they cross process boundaries without pickle."""

from __future__ import annotations

import sys
import traceback as traceback_module
import types
from typing import Any

import pydantic_core
from pydantic import BaseModel, Field

from podiq.exceptions import RemoteTaskError

#: How many linked exceptions (causes, contexts, group members) one record keeps.
MAX_LINKED = 64


class ExceptionData(BaseModel):
    """A task's exception as plain data: type, module, message, args, attributes, traceback,
    notes, and the exceptions linked to it (`__cause__`, `__context__`, a group's members)."""

    type: str
    module: str
    message: str
    args: list[Any] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)
    traceback: str = ""
    notes: list[str] = Field(default_factory=list)
    cause: ExceptionData | None = None
    context: ExceptionData | None = None
    exceptions: list[ExceptionData] = Field(default_factory=list)
    #: A pydantic ValidationError's title and errors (it keeps nothing in `args` to rebuild it from).
    validation: ValidationData | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> ExceptionData:
        return cls._of(exc, {id(exc)}, with_traceback=True)

    @classmethod
    def _of(cls, exc: BaseException, seen: set[int], with_traceback: bool = False) -> ExceptionData:
        def linked(other: BaseException | None) -> ExceptionData | None:
            # A chain can loop (a.__context__ is b, b.__context__ is a) or be deep: keep each once, and a bounded number.
            if other is None or id(other) in seen or len(seen) >= MAX_LINKED:
                return None
            seen.add(id(other))
            return cls._of(other, seen)

        members = exc.exceptions if isinstance(exc, BaseExceptionGroup) else ()
        return cls(
            type=type(exc).__qualname__,
            module=type(exc).__module__,
            message=_text(exc.message if isinstance(exc, BaseExceptionGroup) else str(exc)),
            args=[] if members else [_plain(arg) for arg in exc.args],
            attributes=_attributes(exc),
            # The whole chain is in the outermost traceback text; linked records keep only their data.
            traceback=_text("".join(traceback_module.format_exception(exc))) if with_traceback else "",
            notes=[_text(str(note)) for note in getattr(exc, "__notes__", ())],
            cause=linked(exc.__cause__),
            context=None if exc.__suppress_context__ else linked(exc.__context__),
            exceptions=[data for data in map(linked, members) if data is not None],
            validation=ValidationData.of(exc) if isinstance(exc, pydantic_core.ValidationError) else None,
        )

    def to_exception(self) -> BaseException:
        """Rebuild the exception, with its cause, context, notes and group members.

        Only types from modules this process has already imported are rebuilt: importing a
        module named by remote data would run its code. Anything else becomes RemoteTaskError,
        which keeps the type's name and the traceback.
        """
        exc_type = _importable_exception_type(self.module, self.type)
        exc: BaseException | None = None
        if exc_type is not None and self.exceptions:
            exc = _construct_group(exc_type, self.message, [member.to_exception() for member in self.exceptions])
        elif exc_type is not None and self.validation is not None:
            exc = self.validation.to_exception(exc_type)
        elif exc_type is not None:
            exc = _construct(exc_type, self.args, self.attributes)
        if exc is None:
            exc = RemoteTaskError(self.type, self.module, self.message, self.traceback)
        for note in self.notes:
            exc.add_note(note)
        if self.traceback and not isinstance(exc, RemoteTaskError):
            exc.add_note(f"Remote traceback:\n{self.traceback.rstrip()}")
        if self.context is not None:
            exc.__context__ = self.context.to_exception()
        if self.cause is not None:
            exc.__cause__ = self.cause.to_exception()
        return exc


class ValidationData(BaseModel):
    """A pydantic ValidationError as data: its title and its errors as `errors()` gives them."""

    title: str
    errors: list[dict[str, Any]]

    @classmethod
    def of(cls, exc: pydantic_core.ValidationError) -> ValidationData | None:
        try:
            # An error's context can hold the exception a validator raised: kept as its text.
            errors = pydantic_core.to_jsonable_python(exc.errors(include_url=False), fallback=str)
            pydantic_core.to_json(errors)
        except Exception:  # noqa: BLE001 - errors that cannot be JSON leave the exception a RemoteTaskError
            return None
        return cls(title=_text(exc.title), errors=errors)

    def to_exception(self, exc_type: type[BaseException]) -> BaseException | None:
        if not issubclass(exc_type, pydantic_core.ValidationError):
            return None
        try:
            return exc_type.from_exception_data(self.title, self.errors)  # type: ignore[arg-type]  # errors() dicts, as pydantic takes them
        except Exception:  # noqa: BLE001 - an error type this pydantic does not know arrives as RemoteTaskError
            return None


def _text(text: str) -> str:
    """JSON text is UTF-8: lone surrogates in a message become escapes instead of failing the record."""
    try:
        text.encode()
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    try:
        converted = pydantic_core.to_jsonable_python(value)
        pydantic_core.to_json(converted)
        return converted
    except Exception:  # noqa: BLE001 - an attribute that cannot be JSON is kept as its repr
        return _text(repr(value))


# Set by C code rather than kept in __dict__ (OSError.filename, ImportError.name, ...);
# the rest of what a builtin keeps is in its args or rebuilt from them.
_LINKS = {"args", "exceptions", "message", "with_traceback", "add_note"}


def _attributes(exc: BaseException) -> dict[str, Any]:
    attributes = {k: _plain(v) for k, v in vars(exc).items() if not k.startswith("_")}
    for klass in type(exc).__mro__:
        if klass.__module__ != "builtins" or klass is BaseException:
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") or name in _LINKS or name in attributes:
                continue
            if isinstance(member, (types.MemberDescriptorType, types.GetSetDescriptorType)):
                value = getattr(exc, name, None)
                if value is not None:
                    attributes[name] = _plain(value)
    return attributes


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


def _construct_group(exc_type: type[BaseException], message: str, members: list[BaseException]) -> BaseException | None:
    if not issubclass(exc_type, BaseExceptionGroup) or not members:
        return None
    try:
        return exc_type(message, members)
    except Exception:  # noqa: BLE001 - a group type we cannot rebuild arrives as RemoteTaskError
        return None


def _construct(exc_type: type[BaseException], args: list[Any], attributes: dict[str, Any]) -> BaseException | None:
    try:
        exc = exc_type(*args)
    except Exception:  # noqa: BLE001 - user constructors may raise anything
        # Keyword-only constructors cannot be called with the stored args: build the object
        # without __init__ and restore its state instead.
        try:
            exc = exc_type.__new__(exc_type, *args)
        except Exception:  # noqa: BLE001 - user constructors may raise anything
            return None
    # The constructor may have formatted its arguments into a message: keep the original args.
    exc.args = tuple(args)
    for name, value in attributes.items():
        try:
            setattr(exc, name, value)
        except Exception:  # noqa: BLE001 - read-only attributes are skipped
            pass
    return exc
