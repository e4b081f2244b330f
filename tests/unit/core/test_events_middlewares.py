"""TaskiqEvents handlers and TaskiqMiddleware hooks."""

from __future__ import annotations

from typing import Any

import pytest

from podiq import (
    InMemoryBroker,
    InMemoryResultBackend,
    TaskiqEvents,
    TaskiqMessage,
    TaskiqMiddleware,
    TaskiqResult,
    TaskiqState,
)


def test_events_are_taskiqs() -> None:
    assert {e.name for e in TaskiqEvents} == {"WORKER_STARTUP", "WORKER_SHUTDOWN", "CLIENT_STARTUP", "CLIENT_SHUTDOWN"}
    assert TaskiqEvents("WORKER_STARTUP") is TaskiqEvents.WORKER_STARTUP


async def test_event_handlers_get_the_state_in_order() -> None:
    log: list[tuple[str, Any]] = []

    class Backend(InMemoryResultBackend):
        async def startup(self) -> None:
            log.append(("backend startup", None))

        async def shutdown(self) -> None:
            log.append(("backend shutdown", None))

    class Hooks(TaskiqMiddleware):
        def startup(self) -> None:
            log.append(("middleware startup", None))

        async def shutdown(self) -> None:
            log.append(("middleware shutdown", None))

    broker = InMemoryBroker(result_backend=Backend()).with_middlewares(Hooks())

    @broker.on_event(TaskiqEvents.WORKER_STARTUP)
    async def worker_up(state: TaskiqState) -> None:
        state.db = "connected"
        log.append(("worker startup", state))

    @broker.on_event(TaskiqEvents.CLIENT_STARTUP)
    def client_up(state: TaskiqState) -> None:
        log.append(("client startup", state))

    @broker.on_event(TaskiqEvents.WORKER_SHUTDOWN, TaskiqEvents.CLIENT_SHUTDOWN)
    def down(state: TaskiqState) -> None:
        log.append(("down", state))

    assert worker_up.__name__ == "worker_up"  # the decorator returns the handler
    async with broker:
        assert broker.state.db == "connected"
    names = [name for name, _ in log]
    assert names == [
        "client startup",
        "worker startup",
        "middleware startup",
        "backend startup",
        "down",
        "down",
        "middleware shutdown",
        "backend shutdown",
    ]
    assert all(state is broker.state for _, state in log if state is not None)


async def test_add_event_handler() -> None:
    broker = InMemoryBroker()
    calls: list[TaskiqState] = []
    broker.add_event_handler(TaskiqEvents.CLIENT_STARTUP, calls.append)
    broker.add_event_handler(TaskiqEvents.CLIENT_STARTUP, calls.append)
    await broker.startup()
    await broker.shutdown()
    assert calls == [broker.state, broker.state]


async def test_client_broker_does_not_run_worker_events() -> None:
    calls: list[str] = []

    class ClientOnly(InMemoryBroker):
        is_worker_process = False

    broker = ClientOnly()
    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, lambda s: calls.append("worker up"))
    broker.add_event_handler(TaskiqEvents.CLIENT_STARTUP, lambda s: calls.append("client up"))
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, lambda s: calls.append("worker down"))
    broker.add_event_handler(TaskiqEvents.CLIENT_SHUTDOWN, lambda s: calls.append("client down"))
    async with broker:
        pass
    assert calls == ["client up", "client down"]


def test_state_is_a_dict_with_attributes() -> None:
    state = TaskiqState()
    state.x = 1
    assert state["x"] == 1
    state["y"] = 2
    assert state.y == 2
    del state.x
    assert "x" not in state
    with pytest.raises(AttributeError, match="State has no attribute 'missing'; set it in a startup event handler"):
        state.missing
    with pytest.raises(AttributeError, match="missing"):
        del state.missing
    assert repr(state) == "TaskiqState({'y': 2})"


class Recorder(TaskiqMiddleware):
    """Every hook, recording (hook, arguments); async or sync per instance."""

    def __init__(self, name: str, log: list[tuple], use_async: bool) -> None:
        super().__init__()
        self.name = name
        self.log = log
        self.use_async = use_async

    def _record(self, hook: str, *args: Any) -> Any:
        self.log.append((self.name, hook, *args))

        async def later() -> Any:
            return args[0] if hook in ("pre_send", "pre_execute") else None

        if self.use_async:
            return later()
        return args[0] if hook in ("pre_send", "pre_execute") else None

    def pre_send(self, message):
        return self._record("pre_send", message)

    def post_send(self, message):
        return self._record("post_send", message)

    def pre_execute(self, message):
        return self._record("pre_execute", message)

    def post_execute(self, message, result):
        return self._record("post_execute", message, result)

    def on_error(self, message, result, exception):
        return self._record("on_error", message, result, exception)

    def post_save(self, message, result):
        return self._record("post_save", message, result)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync hooks", "async hooks"])
async def test_every_hook_is_called_with_the_right_arguments(use_async: bool) -> None:
    log: list[tuple] = []
    broker = InMemoryBroker().with_middlewares(Recorder("a", log, use_async), Recorder("b", log, use_async))

    @broker.task
    async def ok(x: int) -> int:
        return x + 1

    @broker.task
    async def bad() -> None:
        raise KeyError("nope")

    async with broker:
        result = await ok.kiq(1)
        assert await result == 2
        await broker.wait_all()
        hooks = [(who, hook) for who, hook, *_ in log]
        assert hooks == [
            ("a", "pre_send"),
            ("b", "pre_send"),
            ("a", "post_send"),
            ("b", "post_send"),
            ("a", "pre_execute"),
            ("b", "pre_execute"),
            ("b", "post_execute"),
            ("a", "post_execute"),
            ("a", "post_save"),
            ("b", "post_save"),
        ]
        for _, _hook, message, *_rest in log:
            assert isinstance(message, TaskiqMessage)
            assert message.task_id == result.task_id
            assert message.args == [1]
        post_execute = next(entry for entry in log if entry[1] == "post_execute")
        executed: TaskiqResult = post_execute[3]
        assert executed.is_err is False and executed.return_value == 2 and executed.error is None
        post_save = next(entry for entry in log if entry[1] == "post_save")
        assert post_save[3].return_value == 2 and post_save[3].task_id == result.task_id

        log.clear()
        failed = await bad.kiq()
        with pytest.raises(KeyError):
            await failed
        await broker.wait_all()
        hooks = [(who, hook) for who, hook, *_ in log]
        assert hooks == [
            ("a", "pre_send"),
            ("b", "pre_send"),
            ("a", "post_send"),
            ("b", "post_send"),
            ("a", "pre_execute"),
            ("b", "pre_execute"),
            ("b", "on_error"),
            ("a", "on_error"),
            ("b", "post_execute"),
            ("a", "post_execute"),
            ("a", "post_save"),
            ("b", "post_save"),
        ]
        on_error = next(entry for entry in log if entry[1] == "on_error")
        _, _, message, error_result, exception = on_error
        assert isinstance(exception, KeyError)
        assert error_result.is_err is True and error_result.error is exception
        saved = next(entry for entry in log if entry[1] == "post_save")[3]
        assert saved.is_err is True and isinstance(saved.error, KeyError)


async def test_pre_send_can_modify_the_message(broker: InMemoryBroker) -> None:
    class Rewrite(TaskiqMiddleware):
        async def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
            return message.model_copy(update={"args": [100], "labels": {**message.labels, "stamped": "yes"}})

    broker.add_middlewares(Rewrite())

    @broker.task
    async def echo(x: int) -> int:
        return x

    result = await echo.kiq(1)
    assert await result == 100
    assert result.labels == {"stamped": "yes"}


async def test_pre_execute_can_modify_the_message(broker: InMemoryBroker) -> None:
    class Rewrite(TaskiqMiddleware):
        def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
            return message.model_copy(update={"kwargs": {"x": 5}, "args": []})

    broker.add_middlewares(Rewrite())

    @broker.task
    async def echo(x: int) -> int:
        return x

    assert await (await echo.kiq(1)) == 5


async def test_hooks_not_overridden_are_skipped() -> None:
    from podiq._middleware import overrides

    class OnlyPostSave(TaskiqMiddleware):
        def post_save(self, message, result):
            return None

    middleware = OnlyPostSave()
    assert overrides(middleware, "post_save") is True
    assert overrides(middleware, "pre_send") is False
    assert TaskiqMiddleware().pre_send(message := TaskiqMessage(task_id="1", task_name="t")) is message
    assert TaskiqMiddleware().pre_execute(message) is message


async def test_middleware_raising_in_pre_execute_fails_the_run(broker: InMemoryBroker) -> None:
    class Broken(TaskiqMiddleware):
        def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
            raise RuntimeError("middleware broke")

    broker.add_middlewares(Broken())

    @broker.task
    async def job() -> int:
        return 1

    result = await job.kiq()
    with pytest.raises(RuntimeError, match="middleware broke"):
        await result.wait_result(timeout=2)


async def test_middleware_raising_in_post_execute_fails_the_run(broker: InMemoryBroker) -> None:
    class Broken(TaskiqMiddleware):
        def post_execute(self, message: TaskiqMessage, result: TaskiqResult) -> None:
            raise RuntimeError("post_execute broke")

    broker.add_middlewares(Broken())

    @broker.task
    async def job() -> int:
        return 1

    result = await job.kiq()
    with pytest.raises(RuntimeError, match="post_execute broke"):
        await result.wait_result(timeout=2)
