"""Transports open an authenticated connection to a job's sshd.

Each backend module has ``open_session(endpoint, request) -> OpenSession``; ``open_session``
below dispatches on the endpoint's transport name.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import NamedTuple

from ..errors import ProxyError
from ..resolvers import JobEndpoint


class SessionRequest(NamedTuple):
    user: str                  # the login name ssh will use (%r)
    identity: Path             # the user's job-access private key
    shells: tuple[str, ...] = ()
    session_key: str = ""      # a public key to let into this session instead of ``identity``'s
    known_hosts: Path | None = None   # the job's own known_hosts file (keys recorded earlier)
    host: str = ""             # the job host name as ssh has it (%n)
    ssh_user: str | None = None   # the login name ssh was started with (%r), if given


class OpenSession(NamedTuple):
    sock: socket.socket        # carries the raw SSH stream from here on
    host_key: str              # the sshd's public host key(s), one "<type> <base64>" a line
    user: str                  # the login name the session runs as
    note: str = ""             # where the host keys came from, kept beside them in known_hosts
    key_file: str = ""         # a private key this session needs (the pool's session key)
    notice: str = ""           # a line to show the user once connected (a first-use trust)


def open_session(endpoint: JobEndpoint, request: SessionRequest) -> OpenSession:
    if endpoint.transport == "starter":
        from .starter import open_session as open_starter_session
        return open_starter_session(endpoint, request)
    if endpoint.transport == "ec2":
        from .ec2 import open_session as open_ec2_session
        return open_ec2_session(endpoint, request)
    if endpoint.transport == "htcondor-native":
        from .htcondor_native import open_session as open_native_session
        return open_native_session(endpoint, request)
    raise ProxyError(f"job {endpoint.job}: no transport named {endpoint.transport!r}")
