"""Resolvers answer "where does this job run, and how do I reach it?".

Shaped like sshuttle's ``methods``: ``BaseResolver`` below is the interface, each module of this
package (``local``, ``htcondor``) defines one backend as a class named ``Resolver``, and ``load``
imports a backend by its module name, so a path that never meets HTCondor never imports it.
``default_resolver`` decides which one this user's configuration means.
"""
from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING

from condor_job_proxy.common.jobid import JobId
from condor_job_proxy.common.paths import QUEUE_ENV
from condor_job_proxy.common.settings import Settings

if TYPE_CHECKING:
    from condor_job_proxy.common.queue import LocalQueue

from ..errors import ProxyError
from ..model import JobEndpoint, JobSummary

NAMES = ("local", "htcondor")


class BaseResolver:
    """One source of jobs. Callers use only what is declared here: no backend is told apart
    by its name or probed for a method."""
    name = ""
    # The local queue this backend reads, if it reads one: an on-demand job is then started
    # straight into it (no submit), doctor shows its records, --debug lists its stray files.
    queue: LocalQueue | None = None

    def resolve(self, job: JobId) -> JobEndpoint:
        """How to reach ``job`` now; JobNotFound / JobNotRunning say why not."""
        raise NotImplementedError

    def list_jobs(self) -> list[JobSummary]:
        """This user's jobs, for ``jobs`` and the generated Host blocks."""
        raise NotImplementedError

    def enterable_jobs(self) -> tuple[list[JobSummary], int]:
        """(the listed jobs this user may enter, how many others were left out), for the
        generated config; a backend whose listing holds only such jobs leaves none out."""
        return self.list_jobs(), 0

    def remove(self, job: JobId, reason: str) -> None:
        """Take the job out of its queue (condor_ssh_to_job -remove-on-interrupt)."""
        raise NotImplementedError

    def why_idle(self, job: JobId) -> str:
        """Why an idle job does not run yet, for the waiting line; "" when the backend cannot
        tell (a local job is idle only for the moment its starter takes to publish)."""
        return ""


def load(name: str, **options: object) -> BaseResolver:
    """The backend in module ``name`` of this package, made with ``options``."""
    if name not in NAMES:
        raise ProxyError(f"no resolver named {name!r} (known: {', '.join(NAMES)})")
    return __import__(f"{__name__}.{name}", fromlist=["_"]).Resolver(**options)


def default_resolver(queue: str | None = None, schedd: str | None = None,
                     pool: str | None = None) -> BaseResolver:
    """The resolver for this user's jobs: HTCondor when asked for or configured, else the local queue.

    In order: a schedd or pool named on the command line; ``resolver`` in config.toml
    ("local" or "htcondor"); ``schedds``/``pool`` in config.toml; a local queue named by
    --queue or $CONDOR_JOB_PROXY_QUEUE; an HTCondor configuration on this machine
    ($CONDOR_CONFIG or /etc/condor/condor_config) with the bindings installed; the local queue.
    """
    from condor_job_proxy.common import paths
    chosen = paths.settings()
    if _wants_htcondor(chosen, queue, schedd, pool):
        schedds = [schedd] if schedd else list(chosen.schedds)
        return load("htcondor", schedds=schedds, pool=pool or chosen.pool)
    return load("local", queue=queue)


def _wants_htcondor(chosen: Settings, queue: str | None, schedd: str | None,
                    pool: str | None) -> bool:
    if schedd or pool:
        return True
    if chosen.resolver is not None:
        return chosen.resolver == "htcondor"
    if chosen.schedds or chosen.pool:
        return True
    if queue or os.environ.get(QUEUE_ENV):
        return False
    return _htcondor_installed()


def _htcondor_installed() -> bool:
    """An HTCondor client configuration and the bindings (found without importing them)."""
    configured = os.environ.get("CONDOR_CONFIG") or os.path.isfile("/etc/condor/condor_config")
    return bool(configured) and importlib.util.find_spec("htcondor2") is not None
