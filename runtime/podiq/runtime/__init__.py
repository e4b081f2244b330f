"""The podiq runtime: what runs inside a task's pod (`python -m podiq.runtime`, `podiq run`).

It reads its TaskRun, imports the task's module, runs the task with a Context like any
worker, writes progress and the attempt's outcome into the TaskRun's status, and exits with
a code from podiq.kubernetes.ExitCode. It needs no API rights beyond reading its TaskRun and
writing that TaskRun's status.
"""

from podiq.runtime.environment import RuntimeEnvironment
from podiq.runtime.running import main, run_attempt

__all__ = ["RuntimeEnvironment", "main", "run_attempt"]
