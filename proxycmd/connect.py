"""The ProxyCommand's core: ``ssh job-32.0`` -> an authenticated socket handed to ssh.

Kept free of click and of any backend's heavy imports; ``proxycmd.main`` calls ``connect``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starter import paths
from starter.jobid import DEFAULT_HOST_PREFIX, BadJobId, parse_host

from . import pipeline, state
from .errors import ProxyError
from .model import JobEndpoint, ReadySession, SessionRequest
from .resolvers import default_resolver


class NotServed(Exception):
    """The caller's ``serves`` turned the job's endpoint down (the connect daemon leaves some
    to the full proxy command)."""


def connect(host: str, user: str | None = None, *, relay: bool = False,
            queue: str | None = None, identity: Path | None = None,
            known_hosts: Path | None = None, job_identity: Path | None = None,
            shells: list[str] | None = None, prefix: str | None = None,
            deliver: Callable[[ReadySession], None] | None = None,
            serves: Callable[[JobEndpoint], bool] | None = None,
            session_key: str | None = None) -> None:
    """Resolve ``host``, open its session through the pipeline and deliver it: to ssh (fd
    passing, or a relay with ``relay``) unless ``deliver`` takes it. An endpoint that
    ``serves`` turns down raises NotServed before any connection is made. ``session_key`` is
    a public key to let into the session instead of ours (a laptop's, via an access point)."""
    try:
        job = parse_host(host, prefix or DEFAULT_HOST_PREFIX)
    except BadJobId as err:
        raise ProxyError(str(err)) from None
    endpoint = default_resolver(queue).resolve(job)
    if serves is not None and not serves(endpoint):
        raise NotServed(endpoint.transport)
    known_hosts = state.known_hosts_file(host, known_hosts)
    request = SessionRequest(endpoint.user, identity or paths.user_key_path(),
                             tuple(shells or ()), session_key or "", known_hosts=known_hosts,
                             host=host, ssh_user=user)
    ready = pipeline.open_ready(endpoint, request, known_hosts,
                                job_identity or state.identities_dir() / host)
    (deliver or pipeline.to_ssh(relay))(ready)
