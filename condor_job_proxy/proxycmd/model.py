"""The records every part of the connect path passes around: where a job is, what a session needs.

Resolvers make ``JobEndpoint`` and ``JobSummary``; transports take a ``SessionRequest`` and give
an ``OpenSession``; the session pipeline makes a ``ReadySession`` of it. They live here, apart
from both backends, so neither imports the other. Named tuples, not dataclasses: ``dataclasses``
is slow to import on the ProxyCommand's path.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import NamedTuple

from condor_job_proxy.common.jobid import JobId

# Jobs that keep their Host block and name: a suspended one takes sessions again on resume.
REACHABLE_STATES = ("running", "suspended")


class JobEndpoint(NamedTuple):
    """How to reach one running job."""
    job: JobId
    user: str             # the login name sessions run as
    transport: str        # which condor_job_proxy.proxycmd.transports module speaks to it
    address: str          # host:port of the job's starter (EC2: the instance's sshd)
    starter_key: str      # the starter's published public key ("" when there is no starter)
    key_file: str = ""    # a private key ssh must log in with (EC2: the job's key pair file)
    host_keys: tuple[str, ...] = ()   # "<type> <base64>" keys published out of band (EC2 console)
    instance: str = ""    # the cloud instance the job runs as (EC2 instance id)
    schedd: str | None = None   # HTCondor: the schedd holding the job (None: the local one)
    pool: str | None = None     # HTCondor: the pool's collector (None: the configured one)
    notice: str = ""            # a line to show once connected (a local job of another user's)


class JobSummary(NamedTuple):
    """One line of a job listing (and one Host block of the generated config)."""
    job: JobId
    owner: str
    user: str
    state: str
    start_time: float
    command: tuple[str, ...]
    address: str = ""
    pids: tuple[int, ...] = ()        # local queue: the job's main pid first, then the others
    memory_kb: int | None = None      # local queue: their resident set sizes, summed
    cpu_seconds: float | None = None  # local queue: their CPU time, ended processes included
    hold_reason: str = ""    # why a held job is held (HTCondor's HoldReason), else ""


class SessionRequest(NamedTuple):
    user: str                  # the login name the session should run as (the job's)
    identity: Path             # the user's job-access private key: it signs the handshake
    shells: tuple[str, ...] = ()
    session_key: str = ""      # a public key to let into this session instead of ``identity``'s
    known_hosts: Path | None = None   # the job's own known_hosts file (keys recorded earlier)
    host: str = ""             # the job host name as ssh has it (%n)
    ssh_user: str | None = None   # the login name ssh was started with (%r), if given
    login_key: Path | None = None  # the private key of ``session_key``, which ssh then offers
    spare: bool = False        # opened ahead of need, for the next ssh (the connect daemon's)


class OpenSession(NamedTuple):
    """What a transport hands back: the connection and what ssh must be told about it."""
    sock: socket.socket        # carries the raw SSH stream from here on
    host_key: str              # the sshd's public host key(s), one "<type> <base64>" a line
    user: str                  # the login name the session runs as
    note: str = ""             # where the host keys came from, kept beside them in known_hosts
    key_file: str = ""         # a private key this session needs (the pool's session key)
    notice: str = ""           # a line to show the user once connected (a first-use trust)
    spare: bool = False        # the starter took it as a spare (see common/protocol.py)


class ReadySession(NamedTuple):
    """A session whose host key is pinned: all that is left is to give ``sock`` to ssh."""
    sock: socket.socket
    user: str                  # the login name ssh must use
    identity: Path             # the private key ssh must offer
    known_hosts: Path          # where its host key is pinned, under the job's host name
    host_key: str              # what is pinned there: "<type> <base64>", one a line
    issued_key: str = ""       # a private key the transport was issued for this session (the
                               # pool's own ssh-to-job's), the only one its sshd lets in
    notice: str = ""           # a line for the user (an EC2 first-use trust)
