"""The exceptions the ProxyCommand turns into a single stderr line and exit status 255.

The subclasses say what kind of failure it was, so ``condor_ssh_to_job`` can word it as
HTCondor does, return HTCondor's exit code, and know when waiting (``-auto-retry``) helps.
"""
import os
import stat


def report(line: str) -> None:
    """Write ``line`` to stderr, and to the terminal as well when stderr is /dev/null: ssh puts
    a ProxyCommand's stderr there whenever ControlPersist is on (the default include's case),
    which would leave a user with only ssh's "proxy dialer did not pass back a connection"."""
    data = (line + "\n").encode(errors="replace")
    try:
        os.write(2, data)
    except OSError:
        pass
    terminal = hidden_terminal()
    if terminal is None:
        return      # no terminal (VS Code, scripts): `condor-job-proxy doctor JOB` says it
    try:
        os.write(terminal, data)
    finally:
        os.close(terminal)


def stderr_hidden() -> bool:
    """Whether ssh has put our stderr on /dev/null (it does whenever ControlPersist is on)."""
    return _is_dev_null(2)


def hidden_terminal() -> int | None:
    """The controlling terminal, opened for writing, when ssh has put our stderr on /dev/null
    (ControlPersist) so that the user would see nothing; None otherwise or without one."""
    if not stderr_hidden():
        return None
    try:
        return os.open("/dev/tty", os.O_WRONLY | os.O_NOCTTY)
    except OSError:
        return None


def _is_dev_null(fd: int) -> bool:
    try:
        info = os.fstat(fd)
        return stat.S_ISCHR(info.st_mode) and info.st_rdev == os.stat(os.devnull).st_rdev
    except OSError:
        return False


class ProxyError(Exception):
    """A failure to set up the connection, worded for the user."""
    kind = "failed"


class JobNotFound(ProxyError):
    """The job is not in the queue (never was, or has left it)."""
    kind = "not_found"


class JobNotRunning(ProxyError):
    """The job is in the queue but no session can be opened now: idle, held, completed..."""
    kind = "not_running"

    def __init__(self, message: str, state: str, hold_reason: str = "",
                 transport: str = "") -> None:
        super().__init__(message)
        self.state = state
        self.hold_reason = hold_reason
        self.transport = transport    # what reaches the job once it runs, when known

    @property
    def may_start(self) -> bool:
        """Whether waiting can help: the job has not started yet (HTCondor's idle), or runs
        but its starter has not published how to reach it yet."""
        return self.state in ("idle", "starting")


class NotAuthorized(ProxyError):
    """The starter refused the key: neither the job's owner's nor a queue super user's."""
    kind = "not_authorized"


class UserMismatch(ProxyError):
    """ssh asked for a login name the job does not run as; ``user`` is the one it runs as."""

    def __init__(self, message: str, user: str) -> None:
        super().__init__(message)
        self.user = user


def one_line(err: BaseException) -> str:
    """The line a failure is reported as (the caller exits 255): ours say what went wrong in
    the user's words; anything else is named as an internal error, still on one line."""
    if isinstance(err, (ProxyError, OSError, ValueError)):
        message = str(err)
    else:
        message = f"internal error: {type(err).__name__}: {err}"
    from condor_job_proxy.common.names import printable   # what a message quotes: no terminal escape
    return "condor-job-proxy: " + printable(message.replace("\n", " "), 2000)
