"""Files that ssh clients other than OpenSSH read before the ProxyCommand runs, written ahead.

OpenSSH reads a job's IdentityFile and known_hosts file after the proxy has written them.
asyncssh opens every IdentityFile and UserKnownHostsFile when it starts the ProxyCommand,
raises on one that does not exist, and expands no tokens in UserKnownHostsFile. So, beside
each include that is written:

- ``<known_hosts>/%h``, literally: OpenSSH expands the include's ``%h`` to the job's own pin
  file and never reads this one; asyncssh reads only this one. It trusts the user's host CA
  (``condor_job_proxy/proxycmd/hostca.py``) for the include's job host names, and for nothing else.
- ``<identities>/<name>`` for every name of every listed job: a link to the job-access key,
  unless the proxy pointed it already (it re-points it before OpenSSH reads it, for an EC2
  job's key pair or a pool's session key). A job started after the last refresh got its links
  from its own starter (``condor_job_proxy/common/job_links.py``) when it is a local job.
"""
from __future__ import annotations

import os

from condor_job_proxy.common import files, paths
from condor_job_proxy.proxycmd import client_files, hostca
from condor_job_proxy.proxycmd.model import REACHABLE_STATES, JobSummary

from .include import JOB_TOKEN

CA_NOTE = ("# condor-job-proxy: read by ssh clients that do not expand %h in UserKnownHostsFile "
           "(asyncssh).\n# Your host CA, which certifies only the sshd host keys that your "
           "jobs' starters publish,\n# for the jobs' names. OpenSSH checks each job's own pin "
           "file instead. Rewritten by config refresh.\n")


def write(jobs: list[JobSummary], prefix: str) -> None:
    """The CA's trust line and the listed jobs' identity links. A CA that cannot be read or
    made leaves the trust file as it was: OpenSSH needs none of it (``doctor`` says why)."""
    try:
        trust = f"@cert-authority {prefix}* {hostca.ensure_ca()}\n"
    except (OSError, ValueError):
        trust = ""
    if trust:
        target = client_files.known_hosts_dir() / JOB_TOKEN
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        files.write_private(target, CA_NOTE + trust)
    key = paths.user_key_path()
    for job in jobs:
        if job.state in REACHABLE_STATES:
            for name in job.job.host_names(prefix):
                if not os.path.lexists(client_files.identities_dir() / name):
                    client_files.point_identity(name, key)
