"""Waiting for a job to start, with a status line that says what the pool is doing.

``ssh job-N.P`` on an idle job, ``ssh condor-interactive`` and ``condor_ssh_to_job
-auto-retry`` all wait the same way: poll the resolver at a gentle pace, show the job's state,
the time waited and (where the backend can tell) why it does not run yet, and end the wait
with one clear line when the job is held, removed or completes. On a terminal the line is
rewritten in place; anywhere else (VS Code's output log) a new line is written when the
status changes, and once a minute while it does not.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, TextIO

from condor_job_proxy.common import paths
from condor_job_proxy.common.jobid import JobId
from condor_job_proxy.common.names import printable
from condor_job_proxy.common.settings import WAIT_FOREVER, parse_wait

from ..errors import JobNotFound, JobNotRunning, ProxyError, hidden_terminal
from ..model import JobEndpoint
from ..resolvers import BaseResolver as Resolver

# How a user (or a test) overrides config.toml's ``wait`` for one ssh run: ssh passes its own
# environment to the ProxyCommand (``ssh -o SetEnv`` does not: that goes to the server only).
WAIT_ENV = "CONDOR_JOB_PROXY_WAIT"
POLL_ENV = "CONDOR_JOB_PROXY_WAIT_POLL"   # seconds between polls (tests)
DEFAULT_TIMEOUT = WAIT_FOREVER
_LOG_EVERY = 60.0   # seconds between repeated lines when the status is not live
_EXPLAIN_EVERY = 30.0   # seconds between analyses (a collector query of every slot)


def wait_seconds(interactive_host: bool = False) -> float:
    """How long a connect waits for a job that has not started (0: not at all).

    ``wait`` in config.toml (or $CONDOR_JOB_PROXY_WAIT): true, false, a number of seconds,
    or "auto" (the default): wait when a person is at a terminal (ssh's stderr, or its
    controlling terminal while ssh sends our stderr to /dev/null for ControlPersist), not
    in batch use, where failing at once is what scripts expect. An interactive host always
    waits, since submitting and waiting is what it is for.
    """
    seconds = _env_wait() if os.environ.get(WAIT_ENV) else paths.settings().wait
    if seconds is None:
        return DEFAULT_TIMEOUT if interactive_host or _at_a_terminal() else 0.0
    return seconds or (DEFAULT_TIMEOUT if interactive_host else 0.0)


def _env_wait() -> float | None:
    """$CONDOR_JOB_PROXY_WAIT: seconds, or None for "auto" (config.toml's rule)."""
    value = os.environ[WAIT_ENV]
    try:
        return parse_wait(value)
    except ValueError:
        raise ValueError(f"${WAIT_ENV} must be true, false, \"auto\" or seconds, not "
                         f"{printable(repr(value), 80)}") from None


def _at_a_terminal() -> bool:
    if sys.stderr.isatty():
        return True
    terminal = _terminal_if_hidden()
    if terminal is None:
        return False
    terminal.close()
    return True


def _terminal_if_hidden() -> TextIO | None:
    """The controlling terminal when ssh sent our stderr to /dev/null (ControlPersist)."""
    terminal = hidden_terminal()
    return None if terminal is None else os.fdopen(terminal, "w")   # kept for the wait


def pace(elapsed: float) -> float:
    """Seconds until the next poll: quick at first (a job often starts within seconds), then
    gentler on the schedd."""
    override = os.environ.get(POLL_ENV)
    if override:
        return float(override)
    return 1.0 if elapsed < 10 else 5.0 if elapsed < 300 else 15.0


class StatusLine:
    """One status line on stderr: rewritten in place on a terminal, else logged on change."""

    def __init__(self, live: bool | None = None, log_changes: bool = True,
                 stream: TextIO | None = None) -> None:
        self.stream = stream or _terminal_if_hidden() or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.log_changes = log_changes
        self.shown = False
        self._last = ("", 0.0)   # (text without the time, when it was logged)

    def show(self, text: str, changing: str = "") -> None:
        """``text`` plus ``changing`` (the part that moves every time, e.g. the time waited)."""
        if self.live:
            self._write(f"\r\033[K{text}{changing}")
            self.shown = True
        elif self.log_changes:
            now = time.monotonic()
            if text != self._last[0] or now - self._last[1] >= _LOG_EVERY:
                self._write(f"{text}{changing}\n")
                self._last = (text, now)

    def clear(self) -> None:
        if self.shown:
            self._write("\r\033[K")
            self.shown = False

    def _write(self, data: str) -> None:
        try:
            self.stream.write(data)
            self.stream.flush()
        except (OSError, ValueError):
            pass   # nobody is reading stderr any more; the wait goes on


class Waiter:
    """The wait between polls: the status line and the pace. ``explain`` says why the job
    does not run yet ("" when the backend cannot tell)."""

    def __init__(self, job: JobId | str, status: StatusLine | None = None,
                 interval: Callable[[float], float] = pace, announce: str = "",
                 explain: Callable[[], str] | None = None,
                 debug: Callable[[str], None] | None = None) -> None:
        self.job = job
        self.status = status or StatusLine()
        self.interval = interval
        self.announce = announce
        self.explain = explain
        self.debug = debug
        self.started = time.monotonic()
        self.announced = False
        self._explained = ("", -_EXPLAIN_EVERY)   # (text, when)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def wait(self, err: ProxyError) -> None:
        """Show where the job stands, then sleep until the next poll."""
        if self.announce and not self.announced:
            self.status.clear()
            print(self.announce, file=sys.stderr, flush=True)
        self.announced = True
        state = getattr(err, "state", "") or "not in the queue yet"
        why = self._explanation()
        self.status.show(printable(f"job {self.job}: {state}{f'; {why}' if why else ''}"),
                         f", waited {clock(self.elapsed)}")
        if self.debug:
            self.debug(f"not running yet: {err}")
        time.sleep(self.interval(self.elapsed))

    def done(self) -> None:
        self.status.clear()

    def _explanation(self) -> str:
        if self.explain is None or self.elapsed - self._explained[1] < _EXPLAIN_EVERY:
            return self._explained[0]
        try:
            text = self.explain()
        except (ProxyError, OSError, ValueError):
            text = ""   # the analysis is a courtesy; the wait goes on without it
        self._explained = (text, self.elapsed)
        return text


def clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"


def resolve_waiting(resolver: Resolver, job: JobId, timeout: float,
                    waiter: Waiter | None = None,
                    ended: Callable[[], str | None] | None = None) -> JobEndpoint:
    """The job's endpoint; while it has not started and ``timeout`` allows, wait for it.

    A job that leaves the queue or cannot start any more (held, removed, completed) ends
    the wait with its own error, which says what happened and how long we waited; ``ended``
    (when the caller knows the job existed) tells how it ended instead: its exit status or
    reason and where its stderr is, which the queue no longer shows once it has left.
    """
    if timeout <= 0:
        return resolver.resolve(job)
    waiter = waiter or Waiter(job, explain=explainer(resolver, job))
    while True:
        try:
            endpoint = resolver.resolve(job)
        except JobNotRunning as err:
            if err.may_start and waiter.elapsed < timeout:
                waiter.wait(err)
                continue
            raise _after_waiting(err if err.may_start else _how_it_ended(err, ended),
                                 waiter) from None
        except JobNotFound as err:
            raise _after_waiting(_how_it_ended(err, ended), waiter) from None
        waiter.done()
        return endpoint


def _how_it_ended(err: ProxyError, ended: Callable[[], str | None] | None) -> ProxyError:
    """``err`` worded by ``ended`` when it can tell (the error's kind stays)."""
    try:
        text = ended() if ended else None
    except (ProxyError, OSError, ValueError):
        text = None   # the queue's own words are still true
    if text:
        err.args = (text,)
    return err


def explainer(resolver: Resolver, job: JobId) -> Callable[[], str]:
    """The resolver's ``why_idle(job)``, for the waiting line ("" where it cannot say)."""
    return lambda: resolver.why_idle(job)


def _after_waiting(err: ProxyError, waiter: Waiter) -> ProxyError:
    waiter.done()
    if not waiter.announced:
        return err
    err.args = (f"{err} (after waiting {clock(waiter.elapsed)})",)
    return err
