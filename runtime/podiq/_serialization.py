"""Values to JSON and back, converted to the function's annotated types.

Every value that leaves a task call (arguments, return values) goes through here, in-process
too, so that code tested on InMemoryBroker behaves the same on Kubernetes.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
import warnings
from collections.abc import Callable
from typing import Any

import pydantic_core
from pydantic import ConfigDict, PydanticUserError, TypeAdapter

from podiq._dependencies import check_dependencies, is_dependency
from podiq.exceptions import BrokerError, InvalidArgumentsError, SerializationError

_SCALARS = (str, int, float, bool, type(None))
_NO_CONVERSION = (Any, inspect.Parameter.empty, None, type(None))
_BYTES_AS_BASE64 = ConfigDict(val_json_bytes="base64", ser_json_bytes="base64")


def to_json_compatible(value: Any, *, what: str) -> Any:
    """Convert `value` to plain JSON types, or raise a SerializationError naming `what`."""
    try:
        converted = pydantic_core.to_jsonable_python(value, bytes_mode="base64")
        if not isinstance(converted, _SCALARS):
            pydantic_core.to_json(converted)  # JSON text is UTF-8: refuse lone surrogates here, not in the worker
        elif isinstance(converted, str):
            converted.encode()
        return converted
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as exc:
        if isinstance(exc, UnicodeEncodeError) or "surrogates not allowed" in str(exc):
            raise SerializationError(
                f"{what} contains a lone surrogate, which JSON text (UTF-8) cannot carry; pass the data as bytes instead."
            ) from None
        raise SerializationError(
            f"{what} is a {type(value).__module__}.{type(value).__qualname__}, which podiq cannot "
            "convert to JSON. Pass JSON-compatible values, pydantic models, dataclasses, enums or "
            f"datetimes instead (detail: {exc})."
        ) from None


@functools.lru_cache(maxsize=1024)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    try:
        return TypeAdapter(annotation, config=_BYTES_AS_BASE64)
    except PydanticUserError:
        # Models carry their own config, and TypeAdapter refuses a second one.
        return TypeAdapter(annotation)


def from_json_compatible(
    value: Any, annotation: Any, *, what: str, error: type[Exception] = InvalidArgumentsError
) -> Any:
    """Convert a JSON value back to `annotation`, as if it had crossed the wire.

    Without an annotation the value is still a fresh copy: a run (or its retry) that mutates
    its arguments must not change the message they came from.
    """
    if annotation in _NO_CONVERSION:
        return _copy(value) if type(value) in (list, dict) else value
    try:
        adapter = _adapter(annotation)
    except TypeError:  # an unhashable or unsupported annotation: pass the value through
        return _copy(value)
    try:
        return adapter.validate_json(pydantic_core.to_json(value))
    except pydantic_core.ValidationError as exc:
        raise error(f"{what} does not match its annotation {annotation!r}: {exc.errors(include_url=False)}") from None


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(item) for item in value]
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    return value


class Signature:
    """A task function's parameters and return type, as podiq needs them."""

    def __init__(self, func: Callable[..., Any], task_name: str) -> None:
        self.task_name = task_name
        self._signature = inspect.signature(func)
        hints = _type_hints(func, task_name)
        self.return_type: Any = hints.get("return", Any)
        self.param_types: dict[str, Any] = {}
        self.injected: set[str] = set()
        for name, param in self._signature.parameters.items():
            hint = hints.get(name, Any)
            if is_dependency(param.default) or _is_annotated_dependency(hint):
                self.injected.add(name)
            else:
                self.param_types[name] = hint
        if self.injected:
            check_dependencies(func, task_name)
            _check_injectable(self._signature, self.injected, task_name)
        # What callers pass: the signature without the parameters the worker injects.
        self._call_signature = self._signature.replace(
            parameters=[p for p in self._signature.parameters.values() if p.name not in self.injected]
        )
        self._positional = [
            name
            for name, param in self._call_signature.parameters.items()
            if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
        ]
        # An injected parameter before a positional one would shift positional arguments,
        # so such functions get their arguments by name.
        ordered = list(self._signature.parameters)
        self._by_name = any(
            ordered.index(injected) < ordered.index(name) for injected in self.injected for name in self._positional
        )
        # Whether a call binds depends only on how many positional arguments and which keyword
        # names it has, so each shape is checked against the signature once.
        self._valid_shapes: set[tuple[int, frozenset[str]]] = set()
        self._takes_no_arguments = not self.param_types
        self._var_positional = next(
            (n for n, p in self._signature.parameters.items() if p.kind is p.VAR_POSITIONAL), None
        )
        var_keyword = next((n for n, p in self._signature.parameters.items() if p.kind is p.VAR_KEYWORD), None)
        # Keyword arguments beyond the named parameters land in **kwargs, converted to its type.
        self._extra_keyword_type = self.param_types.get(var_keyword, Any) if var_keyword else Any

    def encode_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Check the call against the signature and convert every argument to JSON."""
        if not args and not kwargs and self._takes_no_arguments:
            return [], {}
        shape = (len(args), frozenset(kwargs))
        if shape not in self._valid_shapes:
            self._check_shape(args, kwargs)
            self._valid_shapes.add(shape)
        encoded_args = [
            to_json_compatible(value, what=f"Argument {self._name_at(i)!r} of task {self.task_name!r}")
            for i, value in enumerate(args)
        ]
        encoded_kwargs = {
            name: to_json_compatible(value, what=f"Argument {name!r} of task {self.task_name!r}")
            for name, value in kwargs.items()
        }
        return encoded_args, encoded_kwargs

    def _check_shape(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        injected = self.injected.intersection(kwargs)
        if not injected:
            try:
                self._call_signature.bind(*args, **kwargs)
                return
            except TypeError as exc:
                problem = exc
            try:  # was it an injected parameter, passed by position?
                injected = self.injected.intersection(self._signature.bind(*args, **kwargs).arguments)
            except TypeError:
                pass
        if injected:
            raise InvalidArgumentsError(
                f"Cannot send task {self.task_name!r}: {sorted(injected)} are filled by dependency "
                "injection in the worker; do not pass them."
            )
        raise InvalidArgumentsError(
            f"Cannot send task {self.task_name!r}: {problem}. Call it with the arguments of its "
            f"signature {self._call_signature} (dependencies are injected in the worker)."
        )

    def decode_call(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Convert JSON arguments back to the annotated parameter types."""
        if not args and not kwargs:
            return [], {}
        decoded_args = [
            from_json_compatible(value, self._type_at(i), what=f"Argument {self._name_at(i)!r}")
            for i, value in enumerate(args)
        ]
        decoded_kwargs = {
            name: from_json_compatible(value, self._keyword_type(name), what=f"Argument {name!r}")
            for name, value in kwargs.items()
        }
        if self._by_name:
            named = min(len(decoded_args), len(self._positional))
            decoded_kwargs.update(zip(self._positional[:named], decoded_args[:named]))
            decoded_args = decoded_args[named:]
        return decoded_args, decoded_kwargs

    def encode_return(self, value: Any) -> Any:
        """The return value as JSON, checked against the return annotation here, where the run can
        still fail, rather than in the client, where the value could no longer be read."""
        what = f"The return value of task {self.task_name!r}"
        encoded = to_json_compatible(value, what=what)
        if self.return_type not in _NO_CONVERSION:
            from_json_compatible(encoded, self.return_type, what=what, error=SerializationError)
        return encoded

    def _name_at(self, index: int) -> str:
        if index < len(self._positional):
            return self._positional[index]
        return f"*{self._var_positional}[{index - len(self._positional)}]"

    def _keyword_type(self, name: str) -> Any:
        parameter = self._signature.parameters.get(name)
        if parameter is None or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            return self._extra_keyword_type
        return self.param_types.get(name, Any)

    def _type_at(self, index: int) -> Any:
        if index < len(self._positional):
            return self.param_types.get(self._positional[index], Any)
        return self.param_types.get(self._var_positional or "", Any)


def _type_hints(func: Callable[..., Any], task_name: str) -> dict[str, Any]:
    """The function's type hints, resolved one by one: a name that cannot be resolved (imported
    only under TYPE_CHECKING, say) turns conversion off for its own parameter only, with a warning."""
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # noqa: BLE001 - falls back to resolving hints one by one
        pass
    target = inspect.unwrap(func) if inspect.isroutine(func) else getattr(type(func), "__call__", func)  # noqa: B004 - the type's __call__ itself is inspected
    hints: dict[str, Any] = {}
    for name, annotation in getattr(target, "__annotations__", {}).items():
        holder = types.SimpleNamespace(
            __annotations__={name: annotation}, __globals__=getattr(target, "__globals__", {})
        )
        try:
            hints.update(typing.get_type_hints(holder, include_extras=True))
        except Exception as exc:  # noqa: BLE001 - one unresolvable hint only warns
            warnings.warn(
                f"Task {task_name!r}: the annotation {annotation!r} of {name!r} cannot be resolved ({exc}); its "
                "value is passed as plain JSON data. Import the name at module level to have it converted.",
                stacklevel=6,
            )
    return hints


def _check_injectable(signature: inspect.Signature, injected: set[str], task_name: str) -> None:
    """Dependencies are passed by name, so they must be parameters a name can fill."""
    parameters = list(signature.parameters.values())
    for index, parameter in enumerate(parameters):
        if parameter.name not in injected:
            continue
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise BrokerError(
                f"Task {task_name!r}: dependency {parameter.name!r} is positional-only, but dependencies are "
                "passed by name; move it after the '/'."
            )
        if parameter.kind is parameter.POSITIONAL_OR_KEYWORD and any(
            later.kind is later.VAR_POSITIONAL for later in parameters[index + 1 :]
        ):
            raise BrokerError(
                f"Task {task_name!r}: dependency {parameter.name!r} comes before *args, so positional "
                "arguments would fill it; move it after *args (keyword-only)."
            )


def _is_annotated_dependency(hint: Any) -> bool:
    """`Annotated[Context, TaskiqDepends()]`, taskiq's other way to ask for a dependency."""
    return typing.get_origin(hint) is typing.Annotated and any(is_dependency(m) for m in hint.__metadata__)
