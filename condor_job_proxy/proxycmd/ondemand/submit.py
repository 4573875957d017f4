"""Submitting, finding and removing interactive jobs: the local queue and an HTCondor schedd.

Either way the job runs under our starter with ``--linger``, so the job itself ends once
nobody has used it for the template's linger time, however the sessions ended.
"""
from __future__ import annotations

import getpass
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

from condor_job_proxy.common import paths
from condor_job_proxy.common.jobid import JobId

from ..errors import ProxyError
from .template import Template
from ..resolvers import BaseResolver as Resolver

LABEL_ATTR = "CondorJobProxyInteractive"   # HTCondor: the template label, in the job ad
_IDLE, _RUNNING = 1, 2
_PUBLISH_TIMEOUT = 60.0


class Backend(Protocol):
    def find(self, template: Template) -> JobId | None:
        """This user's live (idle or running) job of ``template``, if there is one."""

    def submit(self, template: Template) -> JobId: ...

    def remove(self, job: JobId, reason: str) -> None: ...

    def ended(self, job: JobId, template: Template) -> str | None:
        """How ``job`` ended (exit status or reason, where its stderr is); None if it has not."""


def backend_for(resolver: Resolver) -> Backend:
    """A resolver with a local queue starts the job straight into it; others submit it."""
    if resolver.queue is not None:
        return LocalBackend(resolver)
    return HTCondorBackend(resolver)


def starter_arguments(template: Template, *extra: str) -> list[str]:
    """``run ... -- COMMAND``: the starter's arguments for an interactive job."""
    return ["run", *extra, "--linger", str(template.linger), "--label", template.label,
            "--", *template.command]


class LocalBackend:
    """A ``condor-job-starter run`` started in the background, in the user's home directory."""

    def __init__(self, resolver) -> None:
        self.resolver = resolver
        self.queue = resolver.queue

    def find(self, template: Template) -> JobId | None:
        return self.resolver.running_job_labelled(template.label)

    def submit(self, template: Template) -> JobId:
        memory = template.resources.get("request_memory")
        extra = ["--queue", str(self.queue.directory),
                 *(["--memory-limit", str(memory)] if memory else [])]
        log = _log_file(template)
        spawned = time.time()
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "condor_job_proxy.starter", *starter_arguments(template, *extra)],
                cwd=os.path.expanduser("~"), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True)   # outlives ssh, and Ctrl-C in ssh's terminal
        return self._published(process, log, spawned)

    def _published(self, process: subprocess.Popen, log, spawned: float) -> JobId:
        """The job id, once the starter has published its record (a fraction of a second).

        In a shared queue anyone may plant records ahead of time that name a pid our starter
        may get. Only a record whose file is ours (the queue checks the file's uid against the
        record's) can be our starter's: no other user can write one; and of ours, only one
        written after we started it, for the pid of our child, which stays its own until we
        reap it. The starter key the session then checks comes from that record alone."""
        deadline = time.monotonic() + _PUBLISH_TIMEOUT
        while time.monotonic() < deadline:
            for record in self.queue.records():
                if _ours(record, process.pid, spawned):
                    return JobId(record["cluster"], record["proc"])
            if process.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:]
                raise ProxyError(f"the interactive job's starter exited ({process.returncode})"
                                 f"{': ' + tail[0] if tail else ''}; see {log}")
            time.sleep(0.05)
        process.terminate()
        raise ProxyError(f"the interactive job's starter did not publish its job; see {log}")

    def remove(self, job: JobId, reason: str) -> None:
        self.resolver.remove(job, reason)

    def ended(self, job: JobId, template: Template) -> str | None:
        """The starter keeps an ended job's record, with its exit status; its stderr and the
        starter's are in the template's log."""
        from condor_job_proxy.common.queue import UntrustedRecord
        try:
            record = self.queue.read(job)
        except (UntrustedRecord, ValueError, OSError):
            return None   # the resolver's own error says what is wrong with it
        if record is None or record.get("exit_status") is None:
            return None
        return f"job {job} has ended: exit status {record['exit_status']}; its stderr is in " \
               f"{_log_file(template)}"


def _log_file(template: Template) -> Path:
    """Where an interactive job's stderr goes (the local starter's log, HTCondor's ``error``)."""
    log = paths.state_dir() / "interactive" / f"{template.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return log


def _ours(record: dict, pid: int, spawned: float) -> bool:
    """Whether ``record`` is the one our starter (``pid``, started at ``spawned``) wrote."""
    return (record["owner_uid"] == os.getuid() and record["starter_pid"] == pid
            and record.get("start_time", 0) >= spawned - 1)


class HTCondorBackend:
    """Schedd.submit of a description that runs the template's command under our starter."""

    def __init__(self, resolver) -> None:
        self.resolver = resolver

    def find(self, template: Template) -> JobId | None:
        from condor_job_proxy.common.jobad import quote
        constraint = (f"Owner == {quote(getpass.getuser())} && "
                      f"{LABEL_ATTR} == {quote(template.label)}")
        for ad in self.resolver.query_first_schedd(constraint):
            if ad.get("JobStatus") in (_IDLE, _RUNNING):
                return JobId(int(ad["ClusterId"]), int(ad["ProcId"]))
        return None

    def submit(self, template: Template) -> JobId:
        return self.resolver.submit(description(template))

    def remove(self, job: JobId, reason: str) -> None:
        self.resolver.remove(job, reason)

    def ended(self, job: JobId, template: Template) -> str | None:
        """From the job's ad in the queue (held, removed) or, once it has left, the history."""
        constraint = f"ClusterId == {job.cluster} && ProcId == {job.proc}"
        ads = (self.resolver.query_schedd(self.resolver.schedd_names[0], constraint,
                                          _END_PROJECTION)
               or self.resolver.history(constraint, _END_PROJECTION))
        return how_it_ended(job, ads[0]) if ads else None


_END_PROJECTION = ["ClusterId", "ProcId", "JobStatus", "ExitCode", "ExitBySignal", "ExitSignal",
                   "HoldReason", "RemoveReason", "Err", "Iwd"]
_ENDED = {3: "was removed", 4: "has ended", 5: "is held"}


def how_it_ended(job: JobId, ad) -> str | None:
    """One line for a job that ended or cannot run: how, and where its stderr is."""
    from condor_job_proxy.common.names import printable
    status = ad.get("JobStatus")
    if status not in _ENDED:
        return None
    if status == 4:
        why = (f"killed by signal {ad.get('ExitSignal')}" if ad.get("ExitBySignal") is True
               else f"exit status {ad.get('ExitCode')}")
    else:
        why = str(ad.get("RemoveReason" if status == 3 else "HoldReason") or "no reason given")
    err = str(ad.get("Err") or "/dev/null")
    where = (f"its stderr is in {os.path.join(str(ad.get('Iwd') or ''), err)}"
             if err != "/dev/null" else "its stderr was not kept (error = /dev/null)")
    return printable(f"job {job} {_ENDED[status]}: {why}; {where}", 1000)


def description(template: Template) -> dict[str, str]:
    """The submit description (submit language, all values strings) of an interactive job."""
    from condor_job_proxy.common.jobad import OWNER_KEY_ATTR, quote

    from ..userkey import public_key
    lines = {
        "universe": "vanilla",
        "executable": template.starter,
        "transfer_executable": "false",
        "arguments": submit_arguments(starter_arguments(template)),
        "My.WantIOProxy": "true",
        f"My.{OWNER_KEY_ATTR}": quote(public_key()),
        f"My.{LABEL_ATTR}": quote(template.label),
        "My.InteractiveJob": "true",   # HTCondor's own marker (condor_submit -i), for policies
        "error": str(_log_file(template).with_name(f"{template.name}.$(Cluster).err")),
        **{key: str(value) for key, value in template.resources.items()},
    }
    for line in template.submit:
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"interactive submit line {line!r} is not KEY = VALUE")
        key = key.strip()
        lines["My." + key[1:] if key.startswith("+") else key] = value.strip()
    return lines


def submit_arguments(words: list[str]) -> str:
    """condor_submit's new argument syntax: the whole in double quotes, each word in single
    quotes (a ' doubled, a " doubled)."""
    quoted = ["'" + word.replace("'", "''").replace('"', '""') + "'" for word in words]
    return '"' + " ".join(quoted) + '"'


def describe(template: Template) -> str:
    """One line for the user: what the job will run and how long it stays."""
    return (f"{shlex.join(template.command)}, {template.label}, ends {template.linger} s "
            "after its last session")
