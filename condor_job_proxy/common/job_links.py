"""A new local job's identity links, made by its starter so a client's first connect finds them.

asyncssh opens the include's ``IdentityFile <identities>/%h`` before it runs the ProxyCommand
(which would point it), and raises on a missing file; ``config refresh`` links only the jobs
it listed. So the local queue's starter, run by the user who owns the job, links each name the
job answers to (with the configured host prefix) to that user's job-access key. It only adds:
an existing link (the proxy's, pointing at an EC2 key pair or a pool's session key) is never
replaced, and nothing is written outside a private (0700, the user's own) directory.
"""
from __future__ import annotations

import os

from . import paths
from .files import private_dir_problem
from .jobid import JobId
from .settings import SettingsError


def link_job_names(job: JobId) -> None:
    """Link ``job``'s host names to the job-access key where no link is yet; a user who never
    ran ``setup`` (no state directory, no key) gets nothing, and a failure costs only the link."""
    key = paths.user_key_path()
    try:
        prefix = paths.settings().host_prefix
        if not key.exists() or not paths.state_dir().is_dir():
            return
        directory = paths.identities_dir()
        if private_dir_problem(directory):
            return
        for name in job.host_names(prefix):
            _add_link(directory / name, os.path.abspath(key))
    except (OSError, SettingsError):
        return


def _add_link(link: os.PathLike, target: str) -> None:
    """symlink() is atomic and fails on an existing name: what is there stays."""
    try:
        os.symlink(target, link)
    except FileExistsError:
        pass
