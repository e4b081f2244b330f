"""One firing of a cron schedule: the program a schedule's CronJob runs (`python -m podiq.kubernetes.firing`).

It creates ONE TaskRun from the schedule's template and, under the Forbid and Replace
concurrency policies, stays until that run has finished, so that the CronJob controller, which
sees only its Jobs, applies the policy to whole runs. The TaskRun is named after the firing's
Job, so a retried pod of the same firing gets 409 Conflict and never starts the task twice.

Exit codes: 0 the run was created (and, when waiting, succeeded); 3 the run finished without
success; 4 the API refused the TaskRun (rights or a bad template), which retrying cannot fix.
The CronJob's pod failure policy fails the Job at once on 3 and 4; other failures (the API
was unreachable) are retried by the Job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError

from podiq._problems import problems
from podiq.kubernetes.cronjobs import (
    ENV_JOB_NAME,
    ENV_NAMESPACE,
    ENV_TEMPLATE,
    ENV_WAIT,
    EXIT_REFUSED,
    EXIT_RUN_FAILED,
)

if TYPE_CHECKING:
    from podiq.kubernetes.api import TaskRunApi

__all__ = [
    "FiringEnvironment",
    "main",
    "taskrun_for_firing",
]

logger = logging.getLogger("podiq.firing")


class FiringEnvironment(BaseModel):
    """What the CronJob's pod template tells the firing."""

    template: dict[str, Any]
    job_name: str = Field(min_length=1, max_length=63)
    namespace: str = Field(min_length=1)
    concurrency_policy: str = "Allow"

    @property
    def waits(self) -> bool:
        return self.concurrency_policy in ("Forbid", "Replace")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> FiringEnvironment:
        env = os.environ if environ is None else environ
        try:
            template = json.loads(env.get(ENV_TEMPLATE, ""))
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{ENV_TEMPLATE} is not JSON ({exc}); this pod must be started by a podiq schedule."
            ) from None
        try:
            return cls(
                template=template,
                job_name=env.get(ENV_JOB_NAME, ""),
                namespace=env.get(ENV_NAMESPACE, ""),
                concurrency_policy=env.get(ENV_WAIT) or "Allow",
            )
        except ValidationError as exc:
            raise ValueError(f"the firing pod's environment is incomplete: {problems(exc)}.") from None


def taskrun_for_firing(firing: FiringEnvironment) -> dict[str, Any]:
    """The TaskRun this firing creates: the template, named after the firing's Job."""
    from podiq.kubernetes.resources import API_VERSION, KIND

    template = firing.template
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": firing.job_name,
            "namespace": firing.namespace,
            "labels": dict(template.get("labels") or {}),
        },
        "spec": dict(template["spec"]),
    }


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        firing = FiringEnvironment.from_environ()
    except ValueError as exc:
        print(f"podiq firing: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        return asyncio.run(fire(firing))
    except Exception:
        logger.exception("The schedule could not fire; the Job retries this pod.")
        return 1


async def fire(firing: FiringEnvironment) -> int:
    from podiq.kubernetes.api import ApiError, ConflictError, TaskRunApi
    from podiq.kubernetes.connecting import api_client

    body = taskrun_for_firing(firing)
    name = body["metadata"]["name"]
    async with await api_client() as connection:
        api = TaskRunApi(connection)
        try:
            await api.create(firing.namespace, body)
            logger.info("Created TaskRun %s/%s.", firing.namespace, name)
        except ConflictError:
            logger.info("TaskRun %s/%s exists: an earlier pod of this firing created it.", firing.namespace, name)
        except ApiError as exc:
            if exc.status in (400, 403, 422):
                logger.error("The API refused TaskRun %s/%s: %s", firing.namespace, name, exc)
                return EXIT_REFUSED
            raise
        if not firing.waits:
            return 0
        return await _wait_for_run(api, firing, name)


async def _wait_for_run(api: TaskRunApi, firing: FiringEnvironment, name: str) -> int:
    """Stay until the run finished; on SIGTERM under Replace (the CronJob replaces this firing), cancel it."""
    from podiq.kubernetes.api import NotFoundError

    loop = asyncio.get_running_loop()
    terminated = asyncio.Event()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, terminated.set)
    waiting = asyncio.create_task(_finished(api, firing.namespace, name))
    stopping = asyncio.create_task(terminated.wait())
    await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not waiting.done():
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        if firing.concurrency_policy == "Replace":
            with contextlib.suppress(NotFoundError):
                await api.patch_spec(firing.namespace, name, {"cancelled": True})
                logger.info("Replaced: cancelled TaskRun %s/%s.", firing.namespace, name)
        return 143
    stopping.cancel()
    phase = waiting.result()
    logger.info("TaskRun %s/%s finished: %s.", firing.namespace, name, phase or "deleted")
    return 0 if phase in ("Succeeded", None) else EXIT_RUN_FAILED


async def _finished(api: TaskRunApi, namespace: str, name: str) -> str | None:
    """The run's final phase once it is done; None if it was deleted first."""
    from podiq.kubernetes.watching import follow

    run = await follow(api, namespace, name)
    if run is None:
        return None
    return run.status.phase.value if run.status.phase else "Failed"


if __name__ == "__main__":
    sys.exit(main())
