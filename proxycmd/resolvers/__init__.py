"""Resolvers answer "where does this job run, and how do I reach it?".

Each backend module defines a class with this interface; ``for_job`` picks one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from starter.jobid import JobId


@dataclass(frozen=True)
class JobEndpoint:
    """How to reach one running job."""
    job: JobId
    user: str             # the login name sessions run as
    transport: str        # which proxycmd.transports module speaks to it
    address: str          # host:port of the job's starter (EC2: the instance's sshd)
    starter_key: str      # the starter's published public key ("" when there is no starter)
    key_file: str = ""    # a private key ssh must log in with (EC2: the job's key pair file)
    host_keys: tuple[str, ...] = ()   # "<type> <base64>" keys published out of band (EC2 console)
    instance: str = ""    # the cloud instance the job runs as (EC2 instance id)


@dataclass(frozen=True)
class JobSummary:
    """One line of a job listing (and one Host block of the generated config)."""
    job: JobId
    owner: str
    user: str
    state: str
    start_time: float
    command: list[str]
    address: str = ""


class Resolver(Protocol):
    def resolve(self, job: JobId) -> JobEndpoint: ...

    def list_jobs(self) -> list[JobSummary]: ...


def default_resolver(queue: str | None = None, schedd: str | None = None,
                     pool: str | None = None) -> Resolver:
    """The resolver for this user's jobs: the local queue unless a schedd or pool is named."""
    if schedd or pool:
        from ..errors import ProxyError
        raise ProxyError("HTCondor schedds are not supported yet (-name/-pool)")
    from .local import LocalResolver
    return LocalResolver(queue)
