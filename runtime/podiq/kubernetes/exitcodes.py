"""How a runtime pod tells the operator what became of its attempt.

The runtime writes the attempt's outcome into the TaskRun status itself and then
exits with one of these codes. The operator reads the code from the pod's
terminated container state and relies on it only when the status write did not
arrive (the pod died before it could report), so the code and the status must
agree.

=====  ==============  ===========================================================
code   name            meaning
=====  ==============  ===========================================================
0      SUCCEEDED       the task returned; the runtime wrote the result
1      TASK_ERROR      the task raised; the runtime wrote an error result;
                       the operator retries if the TaskRun's policy allows
3      REJECTED        the task called ``Context.reject()``; never retried
4      REQUEUE         the task called ``Context.requeue()``; the operator starts a
                       new attempt with the ``X-Taskiq-requeue`` label incremented
other  (none)          infrastructure failure: the runtime crashed, was killed
                       (OOM, deadline, eviction) or could not start; the operator
                       writes an error result naming the reason and retries per policy
=====  ==============  ===========================================================

Code 2 is left out on purpose: Python itself exits with 2 on a command-line usage
error, which is an infrastructure problem, not a task outcome.
"""

from __future__ import annotations

import enum

__all__ = ["ExitCode"]


class ExitCode(enum.IntEnum):
    """The runtime's exit codes; any other code means an infrastructure failure."""

    SUCCEEDED = 0
    TASK_ERROR = 1
    REJECTED = 3
    REQUEUE = 4

    @classmethod
    def parse(cls, code: int | None) -> ExitCode | None:
        """The known exit code for ``code``, or ``None`` for an infrastructure failure."""
        if code is None:
            return None
        try:
            return cls(code)
        except ValueError:
            return None
