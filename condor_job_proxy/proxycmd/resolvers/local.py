"""Jobs of the embedded local queue (``condor-job-starter run``).

The queue hands over records whose fields are typed and whose "owner" is the local name of
the uid owning the record file (``condor_job_proxy.common.queue``); a job whose starter process
runs as another uid than that is not taken as that user's job: its starter is gone and its pid
reused, or the record is not what it says.
"""
from __future__ import annotations

import os

from condor_job_proxy.common import paths
from condor_job_proxy.common.jobid import JobId
from condor_job_proxy.common.queue import (COMPLETED, EXITED, LIVE_STATES, REMOVED, RUNNING,
                                           LocalQueue, UntrustedRecord, starter_problem)

from ..errors import JobNotFound, JobNotRunning, ProxyError
from ..model import JobEndpoint, JobSummary
from . import BaseResolver

PROBE_SECONDS = 2.0   # a starter (a neighbour's, maybe silent on purpose), asked by doctor


class Resolver(BaseResolver):
    """The embedded local queue: records our starters publish in a directory."""
    name = "local"

    def __init__(self, queue: str | None = None) -> None:
        self.queue = LocalQueue(paths.queue_dir(queue))

    def resolve(self, job: JobId) -> JobEndpoint:
        record = self._record(job)
        state = record["state"]
        if state not in LIVE_STATES:   # a suspended or exited job's starter says why it refuses
            status = record.get("exit_status")
            detail = f" (exit status {status})" if status is not None else ""
            raise JobNotRunning(f"job {job} is not running: it {_ENDED.get(state, state)}{detail}",
                                state)
        problem = starter_problem(record)
        if problem:
            raise JobNotRunning(f"job {job} is not running: {problem}", "lost")
        if not record.get("starter_address") or "starter_key" not in record:
            raise JobNotRunning(f"job {job} is not running yet: its starter has not published "
                                "an address", "starting")
        if record["owner"] is None:
            raise ProxyError(f"job {job} belongs to uid {record['owner_uid']}, which has no "
                             "login name on this machine")
        return JobEndpoint(job=job, user=record["owner"], transport="starter",
                           address=record["starter_address"], starter_key=record["starter_key"],
                           host_keys=tuple(filter(None, [record.get("host_key")])),
                           notice=_not_yours(job, record))

    def _record(self, job: JobId) -> dict:
        try:
            record = self.queue.read(job)
        except UntrustedRecord as err:
            raise ProxyError(f"refusing job {job}: {err}") from None
        except (ValueError, OSError) as err:
            raise ProxyError(f"cannot read job {job} from {self.queue.directory}: {err}") from None
        if record is None:
            raise JobNotFound(self._not_found(job))
        return record

    def _not_found(self, job: JobId) -> str:
        """Why ``job`` is not in the queue; a node id of a job that is there says the job has
        no nodes (only parallel-universe jobs of a pool have them)."""
        whole = JobId(job.cluster, job.proc)
        if job.node is not None and self._exists(whole):
            return (f"job {whole} has no node {job.node}: it is no parallel-universe job "
                    "(leave the node out of the name)")
        return f"job {job} is not in the queue ({self.queue.directory})"

    def _exists(self, job: JobId) -> bool:
        try:
            return self.queue.read(job) is not None
        except (UntrustedRecord, ValueError, OSError):
            return False

    def remove(self, job: JobId, reason: str) -> None:
        """Signal the job's starter, which ends the job and its sessions (``reason`` is not kept)."""
        from condor_job_proxy.common import queue_control as control
        try:
            control.act(self.queue, job, "remove")
        except control.ControlError as err:
            raise ProxyError(str(err)) from None

    def running_job_labelled(self, label: str) -> JobId | None:
        """This user's newest running job started with ``--label label`` (interactive jobs)."""
        for record in reversed(self.queue.records()):
            if (record.get("label") == label and record["owner_uid"] == os.getuid()
                    and _state(record) == RUNNING):
                return JobId(record["cluster"], record["proc"])
        return None

    def list_jobs(self) -> list[JobSummary]:
        return [_summary(r) for r in self.queue.records()]

    def enterable_jobs(self) -> tuple[list[JobSummary], int]:
        """(this uid's own jobs, how many others the queue holds), for the generated config:
        another account's job is never entered on the include's say-so (a neighbour may let
        your public key in), so it gets no Host block; ``ssh ACCOUNT@job-N`` enters it."""
        records = self.queue.records()
        mine = [_summary(r) for r in records if r["owner_uid"] == os.getuid()]
        return mine, len(records) - len(mine)

    def check_entry(self, job: JobId, seconds: float = PROBE_SECONDS) -> JobEndpoint:
        """The job's endpoint once its starter has said it lets this user's key in (no session
        is opened: see transports.starter.check_access); else why not, in a connect's words.
        A starter that stays silent (a neighbour's, on purpose) gets ``seconds``."""
        from ..transports.starter import check_access
        endpoint = self.resolve(job)
        check_access(endpoint, paths.user_key_path(), seconds)
        return endpoint


_ENDED = {COMPLETED: "has completed", REMOVED: "was removed"}


def _not_yours(job: JobId, record: dict) -> str:
    """Said once connected to a job of another account's (a service account's, say), so that
    nobody types into someone else's shell believing it their own."""
    if record["owner_uid"] == os.getuid():
        return ""
    return (f"condor-job-proxy: note: job {job} belongs to {record['owner']} "
            f"(uid {record['owner_uid']}), not to you; this session runs in that account")


def _summary(record: dict) -> JobSummary:
    """One listed job; its owner and login name are the record file's uid's local name."""
    owner = record["owner"] or f"uid {record['owner_uid']}"
    return JobSummary(job=JobId(record["cluster"], record["proc"]), owner=owner, user=owner,
                      state=_state(record), start_time=record.get("start_time", 0.0),
                      command=tuple(record.get("command", ())),
                      address=record.get("starter_address", ""),
                      pids=tuple(record.get("pids", ())), memory_kb=record.get("memory_kb"),
                      cpu_seconds=record.get("cpu_seconds"))


def _state(record: dict) -> str:
    state = record["state"]
    if state in LIVE_STATES:
        problem = starter_problem(record)
        if problem:
            return f"lost ({problem})"
    if state == EXITED:
        return f"exited ({record.get('sessions', '?')} sessions open)"
    return state
