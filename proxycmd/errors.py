"""The one exception the ProxyCommand turns into a single stderr line and exit status 255."""


class ProxyError(Exception):
    """A failure to set up the connection, worded for the user."""


class UserMismatch(ProxyError):
    """ssh asked for a login name the job does not run as; ``user`` is the one it runs as."""

    def __init__(self, message: str, user: str) -> None:
        super().__init__(message)
        self.user = user
