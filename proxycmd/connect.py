"""The ProxyCommand's core: ``ssh job-32.0`` -> an authenticated socket handed to ssh.

Kept free of click and of any backend's heavy imports; the CLI calls ``connect``.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Callable

from starter import paths
from starter.jobid import DEFAULT_HOST_PREFIX, BadJobId, JobId, parse_host

from . import handoff, identities, knownhosts
from .errors import JobNotRunning, ProxyError, UserMismatch, report
from .resolvers import JobEndpoint, Resolver, default_resolver
from .transports import SessionRequest, open_session


INTERACTIVE_HOST = "condor-interactive"   # and condor-interactive-<template>


class NotServed(Exception):
    """The caller's ``serves`` turned the job's endpoint down (the connect daemon leaves some
    to the full proxy command)."""


def connect(host: str, user: str | None = None, *, relay: bool = False,
            queue: str | None = None, identity: Path | None = None,
            known_hosts: Path | None = None, job_identity: Path | None = None,
            shells: list[str] | None = None, prefix: str | None = None,
            deliver: Callable[[socket.socket, str], None] | None = None,
            serves: Callable[[JobEndpoint], bool] | None = None) -> None:
    """Resolve ``host``, open an authenticated session, pin its host key and hand it to ssh
    (or to ``deliver``, with any line to show the user). An endpoint that ``serves`` turns
    down raises NotServed before any connection is made."""
    if host.startswith(INTERACTIVE_HOST):
        if deliver is not None:
            raise NotServed("interactive")   # the wait and its status line belong to this ssh
        from .interactive import connect_interactive
        return connect_interactive(host, user, queue=queue, relay=relay, identity=identity,
                                   known_hosts=known_hosts, job_identity=job_identity,
                                   shells=shells)
    try:
        job = parse_host(host, prefix or DEFAULT_HOST_PREFIX)
    except BadJobId as err:
        raise ProxyError(str(err)) from None
    endpoint = _resolve(default_resolver(queue), job, may_wait=deliver is None)
    if serves is not None and not serves(endpoint):
        raise NotServed(endpoint.transport)
    connect_endpoint(host, endpoint, user, relay=relay, identity=identity,
                     known_hosts=known_hosts, job_identity=job_identity, shells=shells,
                     deliver=deliver)


def _resolve(resolver: Resolver, job: JobId, may_wait: bool) -> JobEndpoint:
    """The job's endpoint, waiting for an idle job when the user wants that. The connect
    daemon cannot see the user's terminal, nor show a status line: it leaves such a job to
    the full proxy command."""
    try:
        return resolver.resolve(job)
    except JobNotRunning as err:
        if not err.may_start:
            raise
        if not may_wait:
            raise NotServed("idle") from None
    from .waiting import resolve_waiting, wait_seconds
    return resolve_waiting(resolver, job, wait_seconds())


def connect_endpoint(host: str, endpoint: JobEndpoint, user: str | None = None, *,
                     relay: bool = False, identity: Path | None = None,
                     known_hosts: Path | None = None, job_identity: Path | None = None,
                     shells: list[str] | None = None,
                     deliver: Callable[[socket.socket, str], None] | None = None) -> None:
    """From a resolved job on: session, pinned host keys, the job's identity link, handoff."""
    if user and endpoint.user and user != endpoint.user:
        raise UserMismatch(f"job {endpoint.job} runs as user {endpoint.user!r}, not {user!r}: "
                           f"use ssh {endpoint.user}@{host} (or run: condor-job-proxy config "
                           "refresh)", endpoint.user)
    identity = identity or paths.user_key_path()
    known_hosts = knownhosts.job_file(host, known_hosts)
    session = open_session(endpoint, SessionRequest(endpoint.user, identity, tuple(shells or ()),
                                                    known_hosts=known_hosts, host=host,
                                                    ssh_user=user))
    knownhosts.pin(host, session.host_key, known_hosts, session.note)
    identities.point(host, endpoint.key_file or session.key_file or str(identity), job_identity)
    if deliver is not None:
        deliver(session.sock, session.notice)
        return
    if session.notice:
        report(session.notice)
    if not relay and handoff.stdout_takes_fd():
        handoff.pass_fd(session.sock)
    else:
        handoff.relay(session.sock)
