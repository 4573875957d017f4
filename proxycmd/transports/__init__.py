"""Transports open an authenticated connection to a job's sshd.

Each backend module has ``open_session(endpoint, request) -> OpenSession``; ``open_session``
below dispatches on the endpoint's transport name.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ProxyError
from ..resolvers import JobEndpoint


@dataclass(frozen=True)
class SessionRequest:
    user: str                  # the login name ssh will use (%r)
    identity: Path             # the user's job-access private key
    shells: list[str] = field(default_factory=list)
    host: str = ""             # the job host name as ssh has it (%n)
    ssh_user: str | None = None   # the login name ssh was started with (%r), if given


@dataclass
class OpenSession:
    sock: socket.socket        # carries the raw SSH stream from here on
    host_key: str              # the session sshd's public host key, authenticated
    user: str                  # the login name the session runs as


def open_session(endpoint: JobEndpoint, request: SessionRequest) -> OpenSession:
    if endpoint.transport == "starter":
        from .starter import open_session as open_starter_session
        return open_starter_session(endpoint, request)
    if endpoint.transport == "htcondor-native":
        from .htcondor_native import open_session as open_native_session
        return open_native_session(endpoint, request)
    raise ProxyError(f"job {endpoint.job}: no transport named {endpoint.transport!r}")
