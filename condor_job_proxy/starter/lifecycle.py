"""The job's life after launch: suspend, resume, removal, exit with sessions open, accounting.

Sessions are job processes. The starter is a child subreaper, so the job, every session's
sshd and whatever either starts (process groups, setsid'ed daemons, double forks) stay its
descendants; each step below scans /proc for them again, since processes fork meanwhile.

Everything happens on the starter's main thread, woken by requests: signals (SIGTSTP
suspends, SIGCONT resumes, SIGTERM/SIGINT/SIGHUP remove, as HTCondor sends them to its
job), the job's exit, and sessions starting or ending. Signal handlers only enqueue.
"""
from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import container, leftovers, processes
from ..common.jobid import JobId
from ..common.protocol import Refusal
from .publish import Publisher
from ..common.queue import COMPLETED, EXITED, REMOVED, RUNNING, SUSPENDED
from .server import SessionServer
from .stderr import log

REMOVE_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_HELPERS = ("ssh-keygen",)   # the starter's own short-lived children (signing), not job processes
_TICK = 2.0                  # how often accounting is refreshed while nothing happens
_SUSPENDED_TICK = 0.25       # while suspended, catch processes started meanwhile, quickly
# A session's start or end is accounted for this much later: not while its ssh is connecting
# (the /proc scans would compete for the 2 cores), and once for a burst of sessions.
_SESSIONS_SETTLE = 0.25
_FINAL_TRIES = 30   # seconds to keep trying to record the job's end (a full queue, say)
_JOB_EXITED = "job-exited"
_SESSIONS_CHANGED = "sessions"


@dataclass
class Limits:
    """The local equivalent of an HTCondor PREEMPT policy: the job is removed beyond these."""
    memory_mb: float | None = None     # resident memory of the job and its sessions, summed
    cpu_seconds: float | None = None   # CPU time of the job and its sessions, summed
    grace_seconds: float = 5.0         # between SIGTERM/SIGHUP and SIGKILL
    linger_seconds: float | None = None   # end the job once no session was open this long


class JobLifecycle:
    def __init__(self, job: JobId, job_proc: subprocess.Popen, server: SessionServer,
                 publisher: Publisher, record: dict, limits: Limits, private_dir: Path) -> None:
        self.job = job
        self.job_proc = job_proc
        self.server = server
        self.publisher = publisher
        self.record = record
        self.limits = limits
        self.private_dir = private_dir
        self._requests: queue.SimpleQueue = queue.SimpleQueue()   # safe to put from a handler
        self._published: dict = {}
        self._seen: set[tuple[int, int]] = set()   # (pid, start) of every job process ever seen
        self._sessions_due: float | None = None   # when a session change is to be accounted for
        self._unused_since = time.monotonic()   # when the last session ended (or the job began)
        self._in_use = False                    # whether the last look found a session open
        self._failing: set[str] = set()   # rooms (server.rooms) a bookkeeping write just failed in

    def install(self) -> None:
        """Route signals and session changes to the main loop; watch the job's exit."""
        for signum in (*REMOVE_SIGNALS, signal.SIGTSTP, signal.SIGCONT):
            signal.signal(signum, lambda num, _frame: self._requests.put(num))
        self.server.on_change = lambda: self._requests.put(_SESSIONS_CHANGED)
        threading.Thread(target=self._watch_job, daemon=True).start()

    def run(self) -> int:
        """Serve requests until the job and its last session are gone; the job's exit status."""
        while True:
            tick = _SUSPENDED_TICK if self.record["state"] == SUSPENDED else _TICK
            if self._sessions_due is not None:
                tick = max(0.0, min(tick, self._sessions_due - time.monotonic()))
            try:
                request = self._requests.get(timeout=tick)
            except queue.Empty:
                request = None
            if request == _SESSIONS_CHANGED:
                self._sessions_due = self._sessions_due or time.monotonic() + _SESSIONS_SETTLE
                continue
            self._sessions_due = None   # every request and tick accounts, sessions included
            try:
                if self._handle(request):
                    return self.record["exit_status"]
            except Exception as err:   # the job matters more than our bookkeeping: go on
                log(f"job {self.job}: {type(err).__name__}: {err} (going on)")

    def _handle(self, request: object) -> bool:
        """Act on one request (None: a tick); True once the job is over."""
        state = self.record["state"]
        if request in REMOVE_SIGNALS:
            return self._end("removed by signal " + signal.Signals(request).name, request)
        if request == signal.SIGTSTP and state in (RUNNING, EXITED):
            self._suspend()
        elif request == signal.SIGCONT and state == SUSPENDED:
            self._resume()
        elif request == _JOB_EXITED and state != SUSPENDED:
            self._job_exited()
        if self.record["state"] == SUSPENDED:
            self._stop_all()   # anything that was starting while we suspended
        if self.record["state"] == EXITED and self.server.stop_taking_sessions(*self._exited()):
            return self._end(None, signal.SIGTERM)
        return self._account()

    def _watch_job(self) -> None:
        returncode = self.job_proc.wait()
        self.record["exit_status"] = returncode if returncode >= 0 else 128 - returncode
        self._requests.put(_JOB_EXITED)

    def _suspend(self) -> None:
        self.record["state_before_suspend"] = self.record["state"]
        self.server.stop_taking_sessions(Refusal.NOT_RUNNING, "the job is suspended")
        self.record["state"] = SUSPENDED
        self._stop_all()
        self._publish()

    def _resume(self) -> None:
        self.record["state"] = self.record.pop("state_before_suspend", RUNNING)
        for info in self._processes():
            _signal(info.pid, signal.SIGCONT)
        if self.job_proc.poll() is not None:
            self.record["state"] = EXITED
        self.server.refusal = self._exited() if self.record["state"] == EXITED else None
        self._publish()

    def _job_exited(self) -> None:
        """The job's main process ended: stay while sessions are open, refusing new ones."""
        self.record["state"] = EXITED
        self.record["job_end_time"] = time.time()
        self._publish()

    def _exited(self) -> tuple[str, str]:
        return (Refusal.JOB_EXITED, f"exit status {self.record.get('exit_status')}; "
                "its open sessions may finish, no new ones start")

    def _stop_all(self) -> None:
        """SIGSTOP every job process, again until a scan finds none still running."""
        for _ in range(20):
            running = [p for p in self._processes() if p.state not in "TtZX"]
            if not running:
                return
            for info in running:
                _signal(info.pid, signal.SIGSTOP)

    def _end(self, reason: str | None, job_signal: int) -> bool:
        """End the job and every session: polite signals, the grace period, then SIGKILL."""
        self.server.stop_taking_sessions(Refusal.NOT_RUNNING, "the job is ending")
        _close_listener(self.server)
        if reason:
            log(f"job {self.job} {reason}")
        self._terminate(job_signal)
        deadline = time.monotonic() + self.limits.grace_seconds
        # Reaping as we wait: a container's first process ends only once every process of its
        # pid namespace is reaped, and a session's sshd there is ours once its helper is gone.
        while (self._processes(living=True) or self._job_unreaped()) and \
                time.monotonic() < deadline:
            self._reap_orphans()
            time.sleep(0.05)
        # Until nothing is left: a session that was mid-handshake may start its sshd meanwhile.
        while self._processes(living=True) or self.server.session_count():
            for info in self._processes(living=True, helpers=True):
                _signal(info.pid, signal.SIGKILL)
            self._reap_orphans()
            time.sleep(0.02)
        if self._job_unreaped():   # no scan saw it (out of file descriptors?): it is still ours
            _signal(self.job_proc.pid, signal.SIGKILL)
        self.job_proc.wait()
        self._reap_orphans()
        if "exit_status" not in self.record:   # the watcher has not stored it yet
            returncode = self.job_proc.returncode
            self.record["exit_status"] = returncode if returncode >= 0 else 128 - returncode
        self.record.pop("state_before_suspend", None)
        self.record.update(state=REMOVED if reason else COMPLETED, end_time=time.time(), pids=[],
                           memory_kb=0, sessions=0)
        if reason:
            self.record["reason"] = reason
        self._publish_end()
        return True

    def _publish_end(self) -> None:
        """Record the job's end, waiting a while for room: a record left "running" would
        name a starter that is gone."""
        for _ in range(_FINAL_TRIES):
            if self._write("queue", lambda: self.publisher.update(self.job, self.record)):
                return
            time.sleep(1)
        log(f"job {self.job}: its end could not be recorded")

    def _terminate(self, job_signal: int) -> None:
        sessions = self.server.session_pids()
        found = self._processes(living=True)
        if self._job_unreaped() and all(info.pid != self.job_proc.pid for info in found):
            _signal(self.job_proc.pid, job_signal)   # unseen by the scan, but ours all the same
        for info in found:
            if info.pid == self.job_proc.pid:
                _signal(info.pid, job_signal)
            else:
                if info.pid in sessions or info.parent in sessions:
                    _signal(info.pid, signal.SIGHUP)   # what a dropped connection sends
                _signal(info.pid, signal.SIGTERM)
            if info.state in "Tt":
                _signal(info.pid, signal.SIGCONT)   # a stopped process cannot act on the signal

    def _job_unreaped(self) -> bool:
        """The job's main process has not been waited for: its pid is still the job's."""
        return self.job_proc.returncode is None

    def _account(self) -> bool:
        """Refresh pids and usage in the record; remove the job if it is over a limit."""
        infos = self._processes(living=True)
        alive = {(p.pid, p.start_ticks) for p in infos}
        self._seen &= alive   # forget the dead, whose pids may come back as anything
        self._reap_orphans()
        main = self.job_proc.pid
        self.record["pids"] = ([main] if any(p.pid == main for p in infos) else []) + \
            [p.pid for p in infos if p.pid != main]
        self.record["memory_kb"] = sum(p.rss_kb for p in infos)
        found = container.find(processes.job_pids(main) +   # for doctor: where sessions land
                               container.adopted(main, self.server.session_pids()))
        self.record["container"] = found.describe() if found else None
        times = os.times()   # adds the processes that already ended and were reaped
        cpu = sum(p.cpu_seconds for p in infos) + times.children_user + times.children_system
        self.record["cpu_seconds"] = round(cpu, 2)
        self._write("tmpdir", lambda: leftovers.write_processes(self.private_dir, infos))
        over = self._over_limit()
        if over:
            return self._end(over, signal.SIGTERM)
        self._publish()
        return False

    def _over_limit(self) -> str | None:
        return self._memory_or_cpu_over() or self._lingered()

    def _lingered(self) -> str | None:
        """An interactive job ends once nobody used it for the linger time: long enough for
        VS Code's reconnects to find it, short enough not to hold a slot for nobody."""
        if self.limits.linger_seconds is None:
            return None
        now = time.monotonic()
        in_use = self.server.sessions_in_use()
        if in_use or self._in_use:
            # Still in use, or the first look since the last session ended (a session's end
            # is accounted for within _SESSIONS_SETTLE): the linger time starts now.
            self._unused_since, self._in_use = now, bool(in_use)
            return None
        if now - self._unused_since < self.limits.linger_seconds:
            return None
        return f"removed: no session for {self.limits.linger_seconds:g} s (its linger time)"

    def _memory_or_cpu_over(self) -> str | None:
        memory_mb = self.record["memory_kb"] / 1024
        if self.limits.memory_mb is not None and memory_mb > self.limits.memory_mb:
            return (f"removed: resident memory {memory_mb:.0f} MB is over the limit of "
                    f"{self.limits.memory_mb:g} MB")
        cpu = self.record["cpu_seconds"]
        if self.limits.cpu_seconds is not None and cpu > self.limits.cpu_seconds:
            return f"removed: CPU time {cpu:.1f} s is over the limit of {self.limits.cpu_seconds:g} s"
        return None

    def _processes(self, living: bool = False, helpers: bool = False) -> list[processes.ProcInfo]:
        """The job's processes: every descendant of the starter but its own helpers.

        A helper is a child of the starter named like one that was never seen as a job
        process (a job process that re-parents to us and then execs ssh-keygen stays one).
        """
        me = os.getpid()
        snapshot = processes.subtree(me)
        found = []
        for pid in processes.descendants(me, snapshot):
            info = snapshot.get(pid)
            if info is None or (living and info.state in "ZX"):
                continue
            if not helpers and info.parent == me and info.name in _HELPERS and \
                    (info.pid, info.start_ticks) not in self._seen:
                continue
            self._seen.add((info.pid, info.start_ticks))
            found.append(info)
        return found

    def _reap_orphans(self) -> None:
        """Collect processes that re-parented to us and ended (ours to reap as subreaper)."""
        me, known = os.getpid(), {self.job_proc.pid} | self.server.session_pids()
        for info in processes.subtree(me).values():
            if info.parent == me and info.state == "Z" and info.pid not in known and \
                    (info.name not in _HELPERS or (info.pid, info.start_ticks) in self._seen):
                processes.reap(info.pid)

    def _publish(self) -> None:
        """Publish the record; the session count is always the live one (accounting of a session
        change is deferred, but a state change published meanwhile must not show a stale count)."""
        self.record["sessions"] = self.server.sessions_in_use()
        if self.record != self._published and \
                self._write("queue", lambda: self.publisher.update(self.job, self.record)):
            self._published = dict(self.record)

    def _write(self, room: str, write: Callable[[], None]) -> bool:
        """One bookkeeping write, to TMPDIR or the queue; False if it failed. A failure never
        ends the job: it is logged (once until it succeeds again), the next tick tries again
        (an unpublished record stays due), and while the room is full or read-only new
        sessions are refused with one line saying so."""
        where = self.server.rooms.get(room)
        name = where.name if where else "the job's record"
        try:
            write()
        except OSError as err:
            self.server.hold(room, err)
            if room not in self._failing:
                self._failing.add(room)
                log(f"job {self.job}: cannot write to {name}: {err.strerror or err} "
                    "(retrying; the job goes on)")
            return False
        self.server.release(room)
        if room in self._failing:
            self._failing.discard(room)
            log(f"job {self.job}: {name} can be written again")
        return True


def _close_listener(server: SessionServer) -> None:
    """Stop accepting; shutdown() also wakes the thread blocked in accept()."""
    try:
        server.listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    server.listener.close()


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
