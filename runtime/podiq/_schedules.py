"""Schedules: what to send and when. The loop that sends them is in _scheduler.py."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator, model_validator

from podiq._problems import problems
from podiq.exceptions import InvalidScheduleError

if TYPE_CHECKING:
    from podiq._kicker import AsyncKicker
    from podiq._result import TaskiqResult

R = TypeVar("R")


def validate_cron(cron: str) -> str:
    if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise ValueError(
            f"{cron!r} is not a valid cron expression; use five fields "
            "'minute hour day-of-month month day-of-week', e.g. '*/5 * * * *'"
        )
    try:  # well-formed, but some dates never come (30 February)
        croniter(cron, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"{cron!r} never fires: no date matches its day and month fields") from None
    return cron


def validate_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not a known IANA time zone; use a name such as 'Europe/Berlin' or 'UTC'"
        ) from None
    return name


_TIMEDELTA: TypeAdapter[timedelta] = TypeAdapter(timedelta)


def validate_interval_value(value: Any) -> Any:
    """An interval is a whole number of seconds, at least 1 (an int or a timedelta), or None."""
    if isinstance(value, str):  # a timedelta after a JSON round trip ('PT10S')
        try:
            value = _TIMEDELTA.validate_python(value)
        except ValidationError:
            pass
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if seconds is not None and (not isinstance(seconds, (int, float)) or seconds < 1 or seconds != int(seconds)):
        raise ValueError(f"interval must be a whole number of seconds, at least 1 (got {value!r})")
    return value


def validate_offset(value: str | timedelta | None) -> str | timedelta | None:
    """A zone name, or a fixed offset; JSON turns a timedelta into an ISO duration ('PT2H'), read back here."""
    if isinstance(value, str) and value.startswith(("P", "-P")):
        try:
            value = _TIMEDELTA.validate_python(value)
        except ValidationError:
            pass
    if isinstance(value, timedelta):
        if not -timedelta(hours=24) < value < timedelta(hours=24):
            raise ValueError(f"offset {value!r} is not a UTC offset; use one between -24 and +24 hours, or a zone name")
        return value
    return validate_timezone(value) if isinstance(value, str) else value


class CronSpec(BaseModel):
    """A cron schedule by field, rendered with `to_cron()`; `timezone` is an IANA name.

    taskiq's `offset` (a zone name or a fixed `timedelta`) is accepted too.
    """

    minutes: str | int = "*"
    hours: str | int = "*"
    days: str | int = "*"
    months: str | int = "*"
    weekdays: str | int = "*"
    timezone: str | None = None
    offset: str | timedelta | None = None

    _offset = field_validator("offset")(staticmethod(validate_offset))

    def __init__(self, **fields: Any) -> None:
        try:
            super().__init__(**fields)
        except ValidationError as exc:
            raise InvalidScheduleError(f"Invalid CronSpec: {schedule_problems(exc)}.") from None

    @model_validator(mode="after")
    def _valid(self) -> CronSpec:
        validate_cron(self.to_cron())
        if self.timezone is not None:
            validate_timezone(self.timezone)
        return self

    @property
    def cron_offset(self) -> str | timedelta | None:
        """The zone (or offset) the cron times are read in."""
        return self.timezone or self.offset

    def to_cron(self) -> str:
        return f"{self.minutes} {self.hours} {self.days} {self.months} {self.weekdays}"


class ScheduledTask(BaseModel):
    """One schedule: a task call plus exactly one of `cron`, `time` or `interval`."""

    task_name: str
    labels: dict[str, Any] = Field(default_factory=dict)
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    schedule_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    #: Every firing sends this task id when set (`kicker().with_task_id()`); a new one otherwise.
    task_id: str | None = None
    cron: str | None = None
    cron_offset: str | timedelta | None = None
    time: datetime | None = None
    interval: timedelta | None = None

    def __init__(self, **fields: Any) -> None:
        try:
            super().__init__(**fields)
        except ValidationError as exc:
            error = InvalidScheduleError(
                f"Invalid schedule for task {fields.get('task_name')!r}: {schedule_problems(exc)}."
            )
            error.problems = schedule_problems(exc)
            raise error from None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else validate_cron(value)

    _offset = field_validator("cron_offset")(staticmethod(validate_offset))

    _interval = field_validator("interval", mode="before")(staticmethod(validate_interval_value))

    @model_validator(mode="after")
    def _exactly_one_trigger(self) -> ScheduledTask:
        given = [name for name in ("cron", "time", "interval") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a schedule needs exactly one of cron, time or interval (got {given or 'none'})")
        return self

    def next_run(self, after: datetime) -> datetime | None:
        """The first time strictly after `after` (aware, UTC) when this schedule fires; None if never."""
        if self.time is not None:
            when = self.time if self.time.tzinfo else self.time.replace(tzinfo=UTC)
            return when if when > after else None
        if self.interval is not None:
            return after + self.interval
        assert self.cron is not None
        if isinstance(self.cron_offset, str):
            local = after.astimezone(ZoneInfo(self.cron_offset))
        else:
            local = after.astimezone(timezone(self.cron_offset or timedelta()))
        times = croniter(self.cron, local)
        while True:
            when = times.get_next(datetime)
            # As cron does: when the clock goes back, a job at a fixed hour runs in the first of
            # the repeated hour only; one whose hour is a wildcard runs in both.
            if "*" in self.cron.split()[1] or not _second_of_repeated(when):
                return when.astimezone(UTC)


def _second_of_repeated(local: datetime) -> bool:
    """Whether `local` is the second occurrence of a wall-clock time repeated when the clock went back."""
    wall = local.replace(tzinfo=None)
    first, second = (wall.replace(tzinfo=local.tzinfo, fold=fold) for fold in (0, 1))
    return first.utcoffset() != second.utcoffset() and local.utcoffset() == second.utcoffset()


class ScheduleSource(ABC):
    """Where schedules live, as in taskiq."""

    async def startup(self) -> None:  # noqa: B027 - optional hook
        """Open connections."""

    async def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Close connections."""

    @abstractmethod
    async def get_schedules(self) -> list[ScheduledTask]: ...

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not support adding schedules.")

    async def delete_schedule(self, schedule_id: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not support deleting schedules.")

    def pre_send(self, task: ScheduledTask) -> Any:  # noqa: B027 - optional hook
        """Before a schedule fires; raise ScheduledTaskCancelledError to skip this firing."""

    def post_send(self, task: ScheduledTask) -> Any:  # noqa: B027 - optional hook
        """After a schedule fired."""


class InMemoryScheduleSource(ScheduleSource):
    """Schedules in a dict, for one process."""

    def __init__(self) -> None:
        self.schedules: dict[str, ScheduledTask] = {}

    async def get_schedules(self) -> list[ScheduledTask]:
        return list(self.schedules.values())

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        self.schedules[schedule.schedule_id] = schedule

    async def delete_schedule(self, schedule_id: str) -> None:
        self.schedules.pop(schedule_id, None)


class CreatedSchedule(Generic[R]):
    """A schedule that was added: its id and source, `unschedule()` and `kiq()` to run it now."""

    def __init__(
        self, kicker: AsyncKicker[Any, R], source: ScheduleSource, schedule_id: str, task: ScheduledTask | None = None
    ) -> None:
        self.kicker = kicker
        self.source = source
        self.schedule_id = schedule_id
        #: The ScheduledTask that was added, as in taskiq.
        self.task = task

    async def unschedule(self) -> None:
        await self.source.delete_schedule(self.schedule_id)

    async def kiq(self, *args: Any, **kwargs: Any) -> TaskiqResult[R]:
        """Send the scheduled task once, now, with the given arguments."""
        from podiq._result import TaskiqResult

        return TaskiqResult.pending(await self.kicker.with_schedule_id(self.schedule_id).kiq(*args, **kwargs))

    def __repr__(self) -> str:
        return f"CreatedSchedule(schedule_id={self.schedule_id!r}, source={type(self.source).__name__})"


def schedule_problems(exc: ValidationError) -> str:
    """What is wrong with a schedule, field by field, for an InvalidScheduleError."""
    return problems(exc, whole="schedule")


async def schedule_call(
    kicker: AsyncKicker[Any, R],
    source: ScheduleSource,
    trigger: dict[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> CreatedSchedule[R]:
    """Check the call and the trigger now, then add the schedule to `source`."""
    message = kicker._prepare_message(*args, **kwargs)
    cron = trigger.get("cron")
    if isinstance(cron, CronSpec):
        trigger = {"cron": cron.to_cron(), "cron_offset": cron.cron_offset}
    schedule = ScheduledTask(
        task_name=message.task_name,
        labels=message.labels,
        args=message.args,
        kwargs=message.kwargs,
        schedule_id=kicker.custom_schedule_id or uuid.uuid4().hex,
        task_id=kicker.custom_task_id,
        **trigger,
    )
    await source.add_schedule(schedule)
    return CreatedSchedule(kicker, source, schedule.schedule_id, schedule)
