"""Resolvers answer "where does this job run, and how do I reach it?".

Each backend module defines a class with this interface; ``for_job`` picks one.
"""
from __future__ import annotations

import importlib.util
import os
from typing import NamedTuple, Protocol

from starter.jobid import JobId
from starter.paths import QUEUE_ENV


class JobEndpoint(NamedTuple):
    """How to reach one running job (a named tuple: ``dataclasses`` is slow to import on the
    ProxyCommand's path)."""
    job: JobId
    user: str             # the login name sessions run as
    transport: str        # which proxycmd.transports module speaks to it
    address: str          # host:port of the job's starter (EC2: the instance's sshd)
    starter_key: str      # the starter's published public key ("" when there is no starter)
    key_file: str = ""    # a private key ssh must log in with (EC2: the job's key pair file)
    host_keys: tuple[str, ...] = ()   # "<type> <base64>" keys published out of band (EC2 console)
    instance: str = ""    # the cloud instance the job runs as (EC2 instance id)
    schedd: str | None = None   # HTCondor: the schedd holding the job (None: the local one)
    pool: str | None = None     # HTCondor: the pool's collector (None: the configured one)


# Jobs that keep their Host block and name: a suspended one takes sessions again on resume.
REACHABLE_STATES = ("running", "suspended")


class JobSummary(NamedTuple):
    """One line of a job listing (and one Host block of the generated config)."""
    job: JobId
    owner: str
    user: str
    state: str
    start_time: float
    command: tuple[str, ...]
    address: str = ""


class Resolver(Protocol):
    def resolve(self, job: JobId) -> JobEndpoint: ...

    def list_jobs(self) -> list[JobSummary]: ...

    def remove(self, job: JobId, reason: str) -> None:
        """Take the job out of its queue (condor_ssh_to_job -remove-on-interrupt)."""


def default_resolver(queue: str | None = None, schedd: str | None = None,
                     pool: str | None = None) -> Resolver:
    """The resolver for this user's jobs: HTCondor when asked for or configured, else the local queue.

    In order: a schedd or pool named on the command line; ``resolver`` in config.toml
    ("local" or "htcondor"); ``schedds``/``pool`` in config.toml; a local queue named by
    --queue or $CONDOR_JOB_PROXY_QUEUE; an HTCondor configuration on this machine
    ($CONDOR_CONFIG or /etc/condor/condor_config) with the bindings installed; the local queue.
    """
    from starter import paths
    settings = paths.settings()
    if _wants_htcondor(settings, queue, schedd, pool):
        from .htcondor import HTCondorResolver
        schedds = [schedd] if schedd else _schedd_names(settings)
        return HTCondorResolver(schedds, pool or settings.get("pool"))
    from .local import LocalResolver
    return LocalResolver(queue)


def _wants_htcondor(settings: dict, queue: str | None, schedd: str | None,
                    pool: str | None) -> bool:
    if schedd or pool:
        return True
    chosen = settings.get("resolver")
    if chosen is not None:
        if chosen not in ("local", "htcondor"):
            raise ValueError(f"config.toml: resolver must be \"local\" or \"htcondor\", "
                             f"not {chosen!r}")
        return chosen == "htcondor"
    if settings.get("schedds") or settings.get("pool"):
        return True
    if queue or os.environ.get(QUEUE_ENV):
        return False
    return _htcondor_installed()


def _schedd_names(settings: dict) -> list[str]:
    names = settings.get("schedds", [])
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("config.toml: schedds must be a list of schedd names")
    return names


def _htcondor_installed() -> bool:
    """An HTCondor client configuration and the bindings (found without importing them)."""
    configured = os.environ.get("CONDOR_CONFIG") or os.path.isfile("/etc/condor/condor_config")
    return bool(configured) and importlib.util.find_spec("htcondor2") is not None
