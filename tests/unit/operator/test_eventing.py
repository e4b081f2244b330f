"""Events on TaskRuns: their body, and posting that never holds a reconciliation up."""

from __future__ import annotations

import asyncio
from typing import Any

from podiq_operator.decisions import Event
from podiq_operator.eventing import EventPoster, event_body

from .conftest import NOW, taskrun_body


def test_an_event_names_its_taskrun_and_says_warning_or_normal() -> None:
    body = event_body(taskrun_body(), Event("Unschedulable", "0/1 nodes" * 200, warning=True), NOW, "op-1")
    assert body["involvedObject"] == {
        "apiVersion": "podiq.io/v1alpha1",
        "kind": "TaskRun",
        "name": "add-1",
        "namespace": "jobs",
        "uid": "uid-add-1",
    }
    assert body["metadata"] == {"generateName": "add-1.", "namespace": "jobs"}
    assert (body["type"], body["reason"], len(body["message"])) == ("Warning", "Unschedulable", 1024)
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-03-04T05:06:07Z"
    assert event_body(taskrun_body(), Event("Started", "m"), NOW)["type"] == "Normal"


async def test_posting_returns_at_once_and_survives_errors() -> None:
    sent: list[str] = []
    release = asyncio.Event()

    class Api:
        async def create_event(self, body: dict[str, Any]) -> None:
            await release.wait()
            if body["reason"] == "Broken":
                raise RuntimeError("apiserver down")
            sent.append(body["reason"])

    poster = EventPoster(Api())
    poster(taskrun_body(), Event("Broken", "m"))
    poster(taskrun_body(), Event("Started", "m"))
    assert sent == []
    release.set()
    await poster.close()
    assert sent == ["Started"]
