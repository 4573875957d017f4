"""The exceptions the ProxyCommand turns into a single stderr line and exit status 255.

The subclasses say what kind of failure it was, so ``condor_ssh_to_job`` can word it as
HTCondor does, return HTCondor's exit code, and know when waiting (``-auto-retry``) helps.
"""


class ProxyError(Exception):
    """A failure to set up the connection, worded for the user."""
    kind = "failed"


class JobNotFound(ProxyError):
    """The job is not in the queue (never was, or has left it)."""
    kind = "not_found"


class JobNotRunning(ProxyError):
    """The job is in the queue but no session can be opened now: idle, held, completed..."""
    kind = "not_running"

    def __init__(self, message: str, state: str, hold_reason: str = "") -> None:
        super().__init__(message)
        self.state = state
        self.hold_reason = hold_reason

    @property
    def may_start(self) -> bool:
        """Whether waiting can help: the job has not started yet (HTCondor's idle)."""
        return self.state == "idle"


class NotAuthorized(ProxyError):
    """The starter refused the key: neither the job's owner's nor a queue super user's."""
    kind = "not_authorized"


class UserMismatch(ProxyError):
    """ssh asked for a login name the job does not run as; ``user`` is the one it runs as."""

    def __init__(self, message: str, user: str) -> None:
        super().__init__(message)
        self.user = user
