"""Rule 7: exceptions cross as data and are rebuilt only from already-imported types."""

from __future__ import annotations

import json
import pathlib

import pytest

import podiq
from podiq import ExceptionData, InMemoryBroker, RemoteTaskError, ResultRecord, TaskiqResult
from podiq.exceptions import TaskiqError, UnknownTaskError


class PaymentDeclined(Exception):
    """Positional constructor that formats its message and keeps attributes."""

    def __init__(self, code: int, amount: float) -> None:
        super().__init__(f"payment declined with code {code}")
        self.code = code
        self.amount = amount


class KeywordOnly(Exception):
    def __init__(self, *, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Outer:
    class Nested(LookupError):
        pass


class Plain(Exception):
    pass


class Formats(Exception):
    """One-argument constructor that formats: rebuilding must not format twice."""

    def __init__(self, code: int) -> None:
        super().__init__(f"failed with code {code}")
        self.code = code


@pytest.fixture
def failing(broker: InMemoryBroker):
    def register(exc: BaseException):
        async def fail() -> None:
            raise exc

        return broker.register_task(fail, f"fail-{type(exc).__qualname__}")

    return register


async def test_builtin_exception_is_rebuilt_with_its_args(failing) -> None:
    result = await failing(KeyError("missing-key")).kiq()
    with pytest.raises(KeyError) as caught:
        await result
    assert caught.value.args == ("missing-key",)
    assert type(caught.value) is KeyError


async def test_custom_exception_keeps_type_args_attributes_and_message(failing) -> None:
    result = await failing(PaymentDeclined(51, 9.99)).kiq()
    with pytest.raises(PaymentDeclined) as caught:
        await result
    error = caught.value
    assert type(error) is PaymentDeclined
    assert error.code == 51 and error.amount == 9.99
    assert error.args == ("payment declined with code 51",)
    assert str(error) == "payment declined with code 51"


async def test_formatting_constructor_is_not_applied_twice(failing) -> None:
    result = await failing(Formats(3)).kiq()
    with pytest.raises(Formats) as caught:
        await result
    assert caught.value.args == ("failed with code 3",)
    assert str(caught.value) == "failed with code 3"
    assert caught.value.code == 3


async def test_keyword_only_constructor(failing) -> None:
    result = await failing(KeywordOnly(reason="busy", retry_after=30)).kiq()
    with pytest.raises(KeywordOnly) as caught:
        await result
    assert caught.value.reason == "busy"
    assert caught.value.retry_after == 30
    assert caught.value.args == ("busy",)
    assert str(caught.value) == "busy"


async def test_nested_class_and_multiple_args(failing) -> None:
    result = await failing(Outer.Nested("a", 2, [3])).kiq()
    with pytest.raises(Outer.Nested) as caught:
        await result
    assert caught.value.args == ("a", 2, [3])


async def test_podiq_exceptions_are_rebuilt_faithfully(failing) -> None:
    result = await failing(UnknownTaskError("some.task", "elsewhere")).kiq()
    with pytest.raises(UnknownTaskError) as caught:
        await result
    original = UnknownTaskError("some.task", "elsewhere")
    assert str(caught.value) == str(original)
    assert caught.value.task_name == "some.task"


async def test_remote_traceback_is_in_the_notes(failing) -> None:
    result = await failing(Plain("with traceback")).kiq()
    with pytest.raises(Plain) as caught:
        await result
    notes = caught.value.__notes__
    assert len(notes) == 1
    assert notes[0].startswith("Remote traceback:\nTraceback (most recent call last):")
    assert "in fail" in notes[0]
    assert notes[0].rstrip().endswith("Plain: with traceback")


def test_exception_from_a_module_not_imported_is_a_remote_task_error() -> None:
    data = ExceptionData(
        type="SecretError",
        module="some_module_that_is_not_imported",
        message="it broke",
        args=["it broke"],
        traceback="Traceback (most recent call last):\n  File 'x.py'\nSecretError: it broke\n",
    )
    error = data.to_exception()
    assert type(error) is RemoteTaskError
    assert isinstance(error, TaskiqError)
    assert error.type_name == "SecretError"
    assert error.module == "some_module_that_is_not_imported"
    assert error.message == "it broke"
    assert "SecretError: it broke" in error.remote_traceback
    assert str(error) == "some_module_that_is_not_imported.SecretError: it broke"
    import sys

    assert "some_module_that_is_not_imported" not in sys.modules  # never imported to rebuild


def test_remote_task_error_without_module() -> None:
    assert str(RemoteTaskError("Boom", "", "msg")) == "Boom: msg"


@pytest.mark.parametrize(
    ("module", "type_name"),
    [
        ("builtins", "print"),  # exists, but not an exception type
        ("builtins", "NoSuchError"),
        ("os", "system"),
        (__name__, "Outer"),  # a class, not an exception
    ],
)
def test_names_that_are_not_exception_types_are_not_rebuilt(module: str, type_name: str) -> None:
    error = ExceptionData(type=type_name, module=module, message="m", args=["m"]).to_exception()
    assert type(error) is RemoteTaskError
    assert error.type_name == type_name


def test_locally_defined_exception_class_becomes_remote_task_error() -> None:
    class LocalError(Exception):
        pass

    error = ExceptionData.from_exception(LocalError("here")).to_exception()
    assert type(error) is RemoteTaskError
    assert "LocalError" in error.type_name


def test_unconstructible_exception_becomes_remote_task_error() -> None:
    class Picky(Exception):
        def __new__(cls, *args, **kwargs):
            raise RuntimeError("cannot build me")

    import sys

    module = sys.modules[__name__]
    module.Picky = Picky  # importable by name, but refuses to be built
    Picky.__qualname__ = "Picky"
    try:
        data = ExceptionData(type="Picky", module=__name__, message="x", args=["x"])
        error = data.to_exception()
        assert type(error) is RemoteTaskError and error.type_name == "Picky"
    finally:
        del module.Picky


def test_exception_data_is_plain_json() -> None:
    try:
        raise PaymentDeclined(7, 1.5)
    except PaymentDeclined as exc:
        data = ExceptionData.from_exception(exc)
    assert data.type == "PaymentDeclined"
    assert data.module == __name__
    assert data.message == "payment declined with code 7"
    assert data.args == ["payment declined with code 7"]
    assert data.attributes == {"code": 7, "amount": 1.5}
    assert "raise PaymentDeclined(7, 1.5)" in data.traceback
    restored = ExceptionData.model_validate_json(data.model_dump_json())
    assert restored == data
    json.loads(data.model_dump_json())


def test_unserialisable_args_and_attributes_are_kept_as_repr() -> None:
    error = ValueError(Outer())
    error.handle = object()
    data = ExceptionData.from_exception(error)
    assert isinstance(data.args[0], str) and "Outer object" in data.args[0]
    assert data.attributes["handle"].startswith("<object object")


def test_result_record_carries_the_error_as_data() -> None:
    record = ResultRecord(is_err=True, error=ExceptionData.from_exception(ValueError("v")))
    text = record.model_dump_json()
    assert '"type":"ValueError"' in text
    result = TaskiqResult.from_record(ResultRecord.model_validate_json(text))
    assert isinstance(result.error, ValueError) and result.error.args == ("v",)


def test_no_pickle_anywhere_in_the_package() -> None:
    package = pathlib.Path(podiq.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for word in ("import pickle", "from pickle", "cloudpickle", "dill", "pickle.loads", "pickle.load("):
            if word in text:
                offenders.append(f"{path.relative_to(package)}: {word}")
    assert offenders == []
