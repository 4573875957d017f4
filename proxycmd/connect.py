"""The ProxyCommand's core: ``ssh job-32.0`` -> an authenticated socket handed to ssh.

Kept free of click and of any backend's heavy imports; the CLI calls ``connect``.
"""
from __future__ import annotations

from pathlib import Path

from starter import paths
from starter.jobid import BadJobId, parse_host

from . import handoff, knownhosts
from .errors import ProxyError, UserMismatch
from .resolvers import default_resolver
from .transports import SessionRequest, open_session


def connect(host: str, user: str | None = None, *, relay: bool = False,
            queue: str | None = None, identity: Path | None = None,
            known_hosts: Path | None = None, shells: list[str] | None = None) -> None:
    """Resolve ``host``, open an authenticated session, pin its host key and hand it to ssh."""
    try:
        job = parse_host(host)
    except BadJobId as err:
        raise ProxyError(str(err)) from None
    endpoint = default_resolver(queue).resolve(job)
    if user and endpoint.user and user != endpoint.user:
        raise UserMismatch(f"job {job} runs as user {endpoint.user!r}, not {user!r}: use "
                           f"ssh {endpoint.user}@{host} (or run: condor-job-proxy config refresh)",
                           endpoint.user)
    identity = identity or paths.user_key_path()
    session = open_session(endpoint, SessionRequest(endpoint.user, identity, shells or [],
                                                    host=host, ssh_user=user))
    knownhosts.pin(host, session.host_key, known_hosts)
    if not relay and handoff.stdout_takes_fd():
        handoff.pass_fd(session.sock)
    else:
        handoff.relay(session.sock)
