"""Acting on a local job from outside: remove, suspend, resume (signals to its starter).

The starter acts on the job and its sessions when it gets the signal, as it does under
HTCondor. Only a record the queue trusts is acted on, so a planted record cannot make us
signal someone else's process. The command waits until the record shows the new state.
"""
from __future__ import annotations

import os
import signal
import time

from .jobid import JobId
from .queue import (EXITED, LIVE_STATES, RUNNING, SUSPENDED, LocalQueue, UntrustedRecord,
                    starter_problem)

_ACTIONS = {"remove": signal.SIGTERM, "suspend": signal.SIGTSTP, "resume": signal.SIGCONT}
_FROM = {"remove": LIVE_STATES, "suspend": (RUNNING, EXITED), "resume": (SUSPENDED,)}


class ControlError(Exception):
    """The action could not be carried out; one line for the user."""


def act(queue: LocalQueue, job: JobId, action: str, wait_seconds: float = 0) -> dict:
    """Send the job's starter the signal for ``action``; wait for the record to change."""
    record = _read(queue, job)
    state = record.get("state")
    if state not in _FROM[action]:
        raise ControlError(f"cannot {action} job {job}: it has {state}" if state not in LIVE_STATES
                           else f"cannot {action} job {job}: it is {state}")
    pid = record["starter_pid"]   # the queue's records have one, an int
    problem = starter_problem(record)   # never signal a process the record's owner does not run
    if problem:
        raise ControlError(f"cannot {action} job {job}: {problem}")
    try:
        os.kill(pid, _ACTIONS[action])
    except ProcessLookupError:
        raise ControlError(f"job {job}'s starter (pid {pid}) is gone") from None
    except PermissionError:
        owner = record["owner"] or f"uid {record['owner_uid']}"
        raise ControlError(f"job {job} runs as {owner}: only that user (or root) "
                           f"can {action} it") from None
    return _wait(queue, job, action, state, pid, wait_seconds)


def _wait(queue: LocalQueue, job: JobId, action: str, before: str, pid: int,
          seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        record = _read(queue, job)
        state = record.get("state")
        done = state not in LIVE_STATES if action == "remove" else state != before
        if done or time.monotonic() >= deadline:
            if seconds and not done:
                raise ControlError(f"job {job}'s starter (pid {pid}) got the {action} signal "
                                   f"but the job is still {state} after {seconds:g} s")
            return record
        time.sleep(0.05)


def _read(queue: LocalQueue, job: JobId) -> dict:
    try:
        record = queue.read(job)
    except (UntrustedRecord, ValueError, OSError) as err:
        raise ControlError(f"cannot read job {job}: {err}") from None
    if record is None:
        raise ControlError(f"job {job} is not in the queue ({queue.directory})")
    return record
