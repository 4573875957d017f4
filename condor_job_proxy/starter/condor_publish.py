"""Publishing a job that runs in an HTCondor pool: its own job ad, written through chirp.

The schedd already knows the job's id, owner and state, so the starter only adds how to
reach it (address, public key, login account) with ``condor_chirp set_job_attr``. Who may
come in is read from the job ad (the owner's key, put there by the submit file) and from the
execute node's queue super users file, which an admin owns.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import chirp
from ..common import jobad
from ..common.jobad import (ADDRESS_ATTR, HOST_KEY_ATTR, NO_TERMINAL_ATTR, OWNER_KEY_ATTR,
                            PARALLEL_UNIVERSE, STARTER_KEY_ATTR, USER_ATTR, node_attribute)
from ..common.jobid import JobId
from ..common.keys import check_key_file, read_keys
from .publish import read_key_files
from .stderr import log

NODE_ENV = "_CONDOR_PROCNO"   # HTCondor's starter gives each node of a parallel job its number

SUPER_USERS_ENV = "CONDOR_JOB_PROXY_SUPER_USERS_KEYS"
DEFAULT_SUPER_USERS_KEYS = Path("/etc/condor-job-proxy/super_users_keys")
_SUPER_USERS = "queue super users file"


class HTCondorPublisher:
    def __init__(self, job_ad: dict, super_users_keys: Path | None = None,
                 chirp_tool: str | None = None) -> None:
        self.job_ad = job_ad
        self.job = job_id_of(job_ad)
        self.super_users_keys = super_users_keys or Path(
            os.environ.get(SUPER_USERS_ENV) or DEFAULT_SUPER_USERS_KEYS)
        if os.path.lexists(self.super_users_keys):   # an admin may add it later: checked per read
            check_key_file(self.super_users_keys, _SUPER_USERS)
        self.chirp_tool = chirp_tool   # None: found when publishing, a miss costs only ssh

    def submit(self, record: dict) -> JobId:
        """Write login account, key and address into the job ad; the id is the ad's own.

        The job is already running: if chirp fails, it keeps running without ssh access
        rather than failing a batch job over a convenience.
        """
        attributes = [(USER_ATTR, record["owner"]), (STARTER_KEY_ATTR, record["starter_key"]),
                      (ADDRESS_ATTR, record["starter_address"]), (HOST_KEY_ATTR, record["host_key"])]
        if record.get("no_terminal"):
            attributes.append((NO_TERMINAL_ATTR, record["no_terminal"]))
        try:
            tool = self.chirp_tool or chirp.find_chirp()
            for name, value in attributes:
                chirp.set_job_attr(node_attribute(name, self.job.node), jobad.quote(value),
                                   tool)
        except chirp.ChirpError as err:
            log(f"job {self.job} runs without ssh access: {err}")
        return self.job

    def update(self, job: JobId, record: dict) -> None:
        """Nothing to publish: the schedd tracks the job's state itself."""

    @property
    def directory(self) -> Path | None:
        return None   # chirp writes nowhere local

    def authorized_keys(self) -> set[str]:
        owner_keys = jobad.lookup(self.job_ad, OWNER_KEY_ATTR)
        keys = read_keys(owner_keys) if isinstance(owner_keys, str) else set()
        return keys | read_key_files([self.super_users_keys], _SUPER_USERS)


def job_id_of(job_ad: dict) -> JobId:
    """The job's id; for a node of a parallel-universe job, ``cluster.proc.node``: all nodes
    share one job ad, and each node's starter is told its number in $_CONDOR_PROCNO."""
    cluster, proc = jobad.lookup(job_ad, "ClusterId"), jobad.lookup(job_ad, "ProcId")
    if not isinstance(cluster, int) or not isinstance(proc, int) or isinstance(cluster, bool):
        raise jobad.JobAdError("the job ad has no ClusterId/ProcId")
    if jobad.lookup(job_ad, "JobUniverse") != PARALLEL_UNIVERSE:
        return JobId(cluster, proc)
    node = os.environ.get(NODE_ENV, "")
    if not (node.isascii() and node.isdigit() and len(node) <= 9):
        raise jobad.JobAdError(f"job {cluster}.{proc} is a parallel-universe job but ${NODE_ENV} "
                               "does not give this node's number")
    return JobId(cluster, proc, int(node))

