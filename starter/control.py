"""Acting on a local job from outside: remove, suspend, resume (signals to its starter).

The starter forwards what it receives to the job and its sessions. Only a record the queue
trusts is acted on, so a planted record cannot make us signal someone else's process.
"""
from __future__ import annotations

import os
import signal

from .jobid import JobId
from .queue import RUNNING, LocalQueue

_ACTIONS = {"remove": signal.SIGTERM, "suspend": signal.SIGTSTP, "resume": signal.SIGCONT}


class ControlError(Exception):
    """The action could not be carried out; one line for the user."""


def act(queue: LocalQueue, job: JobId, action: str) -> None:
    """Send the job's starter the signal for ``action`` (remove, suspend or resume)."""
    record = queue.read(job)
    if record is None:
        raise ControlError(f"job {job} is not in the queue ({queue.directory})")
    if record.get("state") != RUNNING:
        raise ControlError(f"job {job} is not running: it has {record.get('state')}")
    pid = record.get("starter_pid")
    if not isinstance(pid, int) or pid <= 0:
        raise ControlError(f"job {job}'s record has no starter pid")
    try:
        os.kill(pid, _ACTIONS[action])
    except ProcessLookupError:
        raise ControlError(f"job {job}'s starter (pid {pid}) is gone") from None
    except PermissionError:
        raise ControlError(f"job {job} runs as {record.get('owner')}: only that user (or root) "
                           f"can {action} it") from None
