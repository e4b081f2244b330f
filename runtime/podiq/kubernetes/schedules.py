"""Schedules on Kubernetes: a cron schedule is a CronJob, a one-shot time a TaskRun held back until then.

Nothing else keeps running. :mod:`podiq.kubernetes.cronjobs` builds and reads those resources
as plain data; :class:`KubernetesScheduleSource` adds the few API calls.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from podiq._schedules import ScheduledTask, ScheduleSource
from podiq.exceptions import InvalidScheduleError, SendTaskError
from podiq.kubernetes.api import CRONJOBS, ConflictError, InvalidError, ObjectApi, TaskRunApi
from podiq.kubernetes.cronjobs import (
    DEFAULT_FIRING_IMAGE,
    LABEL_SCHEDULE_ID,
    LABEL_TRIGGER,
    SCHEDULER_SERVICE_ACCOUNT,
    ScheduleEntry,
    cronjob_body,
    entry_from_cronjob,
    entry_from_taskrun,
    one_shot_taskrun_body,
    taskrun_template,
)
from podiq.kubernetes.resources import is_dns_label

if TYPE_CHECKING:
    from kubernetes_asyncio import client

    from podiq.kubernetes.broker import KubernetesBroker

__all__ = ["KubernetesScheduleSource", "apply_label_schedules"]


class KubernetesScheduleSource(ScheduleSource):
    """Schedules as Kubernetes resources: ``schedule_by_cron`` makes a CronJob, ``schedule_by_time``
    a TaskRun held back until its time. Nothing else has to keep running.

    Give it the :class:`KubernetesBroker` whose tasks it schedules (namespace, connection and task
    defaults come from it), or only ``namespace``/``kubeconfig``/``context`` to list and delete.
    Each firing runs ``image`` (default: the task's ``image`` label, the broker's image, else
    podiq's runtime image) as ``service_account`` (the chart's ``podiq-scheduler``).
    """

    def __init__(
        self,
        broker: KubernetesBroker | None = None,
        *,
        namespace: str | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        image: str | None = None,
        service_account: str = SCHEDULER_SERVICE_ACCOUNT,
        resources: dict[str, Any] | None = None,
        image_pull_policy: str | None = None,
    ) -> None:
        if broker is None:
            from podiq.kubernetes.broker import KubernetesBroker

            broker = KubernetesBroker(namespace=namespace, kubeconfig=kubeconfig, context=context)
        self.broker = broker
        self.namespace = namespace or broker.namespace
        self.image = image
        self.service_account = service_account
        self.resources = resources
        self.image_pull_policy = image_pull_policy
        self._own_client: client.ApiClient | None = None

    # --- connection ---

    async def startup(self) -> None:
        await self._client()

    async def shutdown(self) -> None:
        if self._own_client is not None:
            await self._own_client.close()
            self._own_client = None

    async def __aenter__(self) -> KubernetesScheduleSource:
        await self.startup()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    async def _client(self) -> client.ApiClient:
        if self.broker.api_client is not None:
            return self.broker.api_client
        if self._own_client is None:
            from podiq.kubernetes.connecting import api_client

            self._own_client = await api_client(self.broker.kubeconfig, self.broker.context)
        return self._own_client

    # --- ScheduleSource ---

    def build(self, schedule: ScheduledTask) -> dict[str, Any]:
        """The resource ``add_schedule`` creates for ``schedule`` (CronJob or TaskRun); checks everything."""
        try:
            if schedule.time is not None:
                return one_shot_taskrun_body(self.broker, schedule, schedule.task_id or self.broker.id_generator())
            template = taskrun_template(self.broker, schedule)
        except SendTaskError as exc:  # the task name, id or a Kubernetes option label
            raise InvalidScheduleError(f"Invalid schedule for task {schedule.task_name!r}: {exc}") from None
        image = self.image or schedule.labels.get("image") or self.broker.defaults.image or DEFAULT_FIRING_IMAGE
        return cronjob_body(
            schedule,
            template,
            namespace=self.namespace,
            image=image,
            service_account=self.service_account,
            resources=self.resources,
            image_pull_policy=self.image_pull_policy,
        )

    async def _apis(self) -> tuple[ObjectApi, TaskRunApi]:
        connection = await self._client()
        return ObjectApi(connection, CRONJOBS), TaskRunApi(connection)

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        """Create the CronJob (replacing one with the same schedule id) or the held-back TaskRun.

        A held-back TaskRun whose name is taken raises :class:`ConflictError`."""
        body = self.build(schedule)
        cronjobs, taskruns = await self._apis()
        try:
            if body["kind"] != "CronJob":
                await taskruns.create(self.namespace, body)
                return
            try:
                await cronjobs.create(self.namespace, body, decode=False)
            except ConflictError:
                existing = await cronjobs.get(self.namespace, schedule.schedule_id) or {}
                metadata = existing.get("metadata", {})
                if (metadata.get("labels") or {}).get(LABEL_SCHEDULE_ID) != schedule.schedule_id:
                    raise InvalidScheduleError(
                        f"schedule_id {schedule.schedule_id!r}: a CronJob of that name exists in "
                        f"{self.namespace} and is not a podiq schedule."
                    ) from None
                body["metadata"]["resourceVersion"] = metadata["resourceVersion"]
                await cronjobs.replace(self.namespace, schedule.schedule_id, body)
        except InvalidError as exc:
            raise InvalidScheduleError(f"Kubernetes refused the schedule: {exc.message}") from None

    async def list_entries(self) -> list[ScheduleEntry]:
        """Every schedule in the namespace, with what Kubernetes knows of it (last firing, active runs)."""
        cronjobs, taskruns = await self._apis()
        listed = await cronjobs.list(self.namespace, label_selector=LABEL_SCHEDULE_ID)
        held_back = await taskruns.list(self.namespace, label_selector=f"{LABEL_TRIGGER}=time")
        entries = [entry_from_cronjob(c) for c in listed.items]
        entries += [entry_from_taskrun(t) for t in held_back.items]
        return [e for e in entries if e is not None]

    async def get_schedules(self) -> list[ScheduledTask]:
        return [entry.schedule for entry in await self.list_entries()]

    async def delete_schedule(self, schedule_id: str) -> None:
        """Remove the schedule's CronJob (its firing Jobs with it; the TaskRuns it made stay, with their
        results) or its one-shot TaskRun if that has not started yet. An unknown id is not an error."""
        await self.delete(schedule_id)

    async def delete(self, schedule_id: str) -> list[str]:
        """:meth:`delete_schedule`, returning what was deleted (``cronjob/<name>``, ``taskrun/<name>``)."""
        if not is_dns_label(schedule_id):
            return []
        cronjobs, taskruns = await self._apis()
        deleted: list[str] = []
        selected = f"{LABEL_SCHEDULE_ID}={schedule_id}"
        for cronjob in (await cronjobs.list(self.namespace, label_selector=selected)).items:
            metadata = cronjob["metadata"]
            if await cronjobs.delete(self.namespace, metadata["name"], uid=metadata["uid"]):
                deleted.append(f"cronjob/{metadata['name']}")
        runs = await taskruns.list(self.namespace, label_selector=f"{selected},{LABEL_TRIGGER}=time")
        for body in runs.items:
            if entry_from_taskrun(body) is None:  # started or finished: no longer a schedule
                continue
            metadata = body["metadata"]
            # Only as read: if the operator started it in between, it is a run now.
            if await taskruns.delete(
                self.namespace, metadata["name"], uid=metadata["uid"], resource_version=metadata["resourceVersion"]
            ):
                deleted.append(f"taskrun/{metadata['name']}")
        return deleted


async def apply_label_schedules(broker: KubernetesBroker, schedules: list[ScheduledTask]) -> None:
    """LabelScheduleSource on Kubernetes: each `schedule` label becomes a CronJob under its stable id
    (replaced on the next start), or, for a `time`, a held-back TaskRun named by that id (made once)."""
    source = KubernetesScheduleSource(broker)
    try:
        for schedule in schedules:
            if schedule.time is not None and schedule.task_id is None:
                schedule = schedule.model_copy(update={"task_id": schedule.schedule_id})
            # Taken: the one-off TaskRun of an earlier start exists.
            with contextlib.suppress(ConflictError):
                await source.add_schedule(schedule)
    finally:
        await source.shutdown()
