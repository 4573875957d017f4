"""The one exception the ProxyCommand turns into a single stderr line and exit status 255."""


class ProxyError(Exception):
    """A failure to set up the connection, worded for the user."""
