"""The ProxyCommand's core: ``ssh job-32.0`` -> an authenticated socket handed to ssh.

Kept free of click and of any backend's heavy imports; ``condor_job_proxy.proxycmd.main`` calls
``connect``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from condor_job_proxy.common import paths
from condor_job_proxy.common.jobid import DEFAULT_HOST_PREFIX, BadJobId, JobId, parse_host

from . import client_files, handoff, pipeline
from .errors import JobNotRunning, ProxyError
from .model import JobEndpoint, ReadySession, SessionRequest
from .resolvers import BaseResolver, default_resolver

INTERACTIVE_HOST = "condor-interactive"   # and condor-interactive-<template>


class NotServed(Exception):
    """The caller's ``serves`` turned the job's endpoint down, or the job must be waited for
    where the caller cannot wait (the connect daemon leaves both to the full proxy command)."""


def connect(host: str, user: str | None = None, *, relay: bool = False,
            queue: str | None = None, identity: Path | None = None,
            known_hosts: Path | None = None, job_identity: Path | None = None,
            shells: list[str] | None = None, prefix: str | None = None,
            deliver: Callable[[ReadySession], None] | None = None,
            serves: Callable[[JobEndpoint], bool] | None = None,
            session_key: str | None = None, may_wait: bool = True,
            opener: pipeline.Opener = pipeline.open_session,
            certify: bool | None = None) -> None:
    """Resolve ``host`` (an interactive host submits or reuses a job), open its session through
    the pipeline and deliver it: to ssh (fd passing, or a relay with ``relay``) unless
    ``deliver`` takes it. An endpoint that ``serves`` turns down raises NotServed before any
    connection is made, as does a job to wait for when not ``may_wait``. ``session_key`` is a
    public key to let into the session instead of ours (a laptop's, via an access point).
    ``opener`` opens the session (the connect daemon's may hand over a spare). ``certify``:
    whether the session's sshd gets a certificate of its host key (hostca.py); None: when
    this process relays for its caller rather than hand the socket to OpenSSH."""
    endpoint = _endpoint(host, queue, prefix, may_wait)
    if serves is not None and not serves(endpoint):
        raise NotServed(endpoint.transport)
    known_hosts = client_files.known_hosts_file(host, known_hosts)
    request = SessionRequest(endpoint.user, identity or paths.user_key_path(),
                             tuple(shells or ()), session_key or "", known_hosts=known_hosts,
                             host=host, ssh_user=user,
                             certify=_names_to_certify(endpoint, host, prefix, relay, certify))
    ready = pipeline.open_ready(endpoint, request, known_hosts,
                                job_identity or client_files.identities_dir() / host, opener)
    (deliver or pipeline.to_ssh(relay))(ready)


def _names_to_certify(endpoint: JobEndpoint, host: str, prefix: str | None, relay: bool,
                      certify: bool | None) -> tuple[str, ...]:
    """The names the user's host CA certifies the job's published host key for, for clients
    that cannot use the pin (hostca.py): the job's names and the one typed. None when OpenSSH
    takes the socket (it checks the pin; nothing of this may slow it down), nor for an access
    point's relay (the laptop pins the key), nor for another account's job (the hello goes
    out before the starter is authenticated)."""
    if certify is None:
        certify = not relay and not handoff.stdout_takes_fd()
    if not certify or endpoint.transport != "starter" or not endpoint.host_keys \
            or endpoint.notice:   # endpoint.notice: another account's job
        return ()
    return tuple(dict.fromkeys([*endpoint.job.host_names(prefix or DEFAULT_HOST_PREFIX), host]))


def _endpoint(host: str, queue: str | None, prefix: str | None, may_wait: bool) -> JobEndpoint:
    if host.startswith(INTERACTIVE_HOST):
        if not may_wait:
            raise NotServed("interactive")   # the wait and its status line belong to this ssh
        from .ondemand.interactive import interactive_endpoint
        return interactive_endpoint(host, queue)
    try:
        job = parse_host(host, prefix or DEFAULT_HOST_PREFIX)
    except BadJobId as err:
        raise ProxyError(str(err)) from None
    return _resolve(default_resolver(queue), job, may_wait)


def _resolve(resolver: BaseResolver, job: JobId, may_wait: bool) -> JobEndpoint:
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
    from .ondemand.waiting import resolve_waiting, wait_seconds
    return resolve_waiting(resolver, job, wait_seconds())
