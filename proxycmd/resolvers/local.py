"""Jobs of the embedded local queue (``condor-job-starter run``)."""
from __future__ import annotations

import os

from starter import paths
from starter.jobid import JobId
from starter.queue import EXITED, LIVE_STATES, RUNNING, LocalQueue, UntrustedRecord

from ..errors import JobNotFound, JobNotRunning, ProxyError
from ..model import JobEndpoint, JobSummary
from . import BaseResolver


class Resolver(BaseResolver):
    """The embedded local queue: records our starters publish in a directory."""
    name = "local"

    def __init__(self, queue: str | None = None) -> None:
        self.queue = LocalQueue(paths.queue_dir(queue))

    def resolve(self, job: JobId) -> JobEndpoint:
        try:
            record = self.queue.read(job)
        except UntrustedRecord as err:
            raise ProxyError(f"refusing job {job}: {err}") from None
        except (ValueError, OSError) as err:
            raise ProxyError(f"cannot read job {job} from {self.queue.directory}: {err}") from None
        if record is None:
            raise JobNotFound(f"job {job} is not in the queue ({self.queue.directory})")
        state = record.get("state")
        if state not in LIVE_STATES:   # a suspended or exited job's starter says why it refuses
            status = record.get("exit_status")
            detail = f" (exit status {status})" if status is not None else ""
            raise JobNotRunning(f"job {job} is not running: it has {state}{detail}", str(state))
        if not _alive(record.get("starter_pid")):
            raise JobNotRunning(f"job {job} is not running: its starter (pid "
                                f"{record.get('starter_pid')}) is gone", "lost")
        if not record.get("starter_address"):
            raise JobNotRunning(f"job {job} is not running yet: its starter has not published "
                                "an address", "starting")
        try:
            return JobEndpoint(job=job, user=record["owner"], transport="starter",
                               address=record["starter_address"], starter_key=record["starter_key"])
        except KeyError as err:
            raise ProxyError(f"job {job}'s record lacks {err}") from None

    def remove(self, job: JobId, reason: str) -> None:
        """Signal the job's starter, which ends the job and its sessions (``reason`` is not kept)."""
        from starter import control
        try:
            control.act(self.queue, job, "remove")
        except control.ControlError as err:
            raise ProxyError(str(err)) from None

    def running_job_labelled(self, label: str) -> JobId | None:
        """This user's newest running job started with ``--label label`` (interactive jobs)."""
        for record in reversed(self.queue.records()):
            if (record.get("label") == label and record.get("owner_uid") == os.getuid()
                    and _state(record) == RUNNING):
                return JobId(record["cluster"], record["proc"])
        return None

    def list_jobs(self) -> list[JobSummary]:
        return [JobSummary(job=JobId(r["cluster"], r["proc"]), owner=r.get("owner", "?"),
                           user=r.get("owner", "?"), state=_state(r),
                           start_time=r.get("start_time", 0.0), command=tuple(r.get("command", ())),
                           address=r.get("starter_address", ""))
                for r in self.queue.records()]


def _state(record: dict) -> str:
    state = record.get("state", "?")
    if state in LIVE_STATES and not _alive(record.get("starter_pid")):
        return "lost"
    if state == EXITED:
        return f"exited ({record.get('sessions', '?')} sessions open)"
    return state


def _alive(pid: object) -> bool:
    """Whether the starter's process exists (the queue serves one machine)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True   # someone else's process: it exists
    return True
