"""Per-job files in the state dir: a session's client key and the job's remembered login user.

Each job host name has a 0700 directory ``<state>/jobs/<host>/``; the generated config names
``<state>/jobs/%n/ssh_key`` as an IdentityFile, so ssh offers the key the pool's own
ssh-to-job issued for this session. Keys are replaced on each connect and the directories of
jobs that left the queue are removed on ``config refresh``. Key contents are never logged.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from starter import paths
from starter.jobid import BadJobId, JobId, parse_host

from .privatefile import write_private

SESSION_KEY = "ssh_key"
USER_FILE = "user"


def jobs_dir() -> Path:
    return paths.state_dir() / "jobs"


def job_dir(host: str) -> Path:
    """The job's directory, created 0700 (host names were validated by parse_host)."""
    directory = jobs_dir() / host
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    return directory


def install_session_key(host: str, private_key: str) -> Path:
    """Write the session's client key 0600, replacing the previous one atomically."""
    return _write(job_dir(host), SESSION_KEY, private_key)


def remember_user(job: JobId, user: str) -> None:
    """The login name the job's sessions run as, learnt from the pool; read by list_jobs."""
    if remembered_user(job) != user:
        _write(job_dir(job.host()), USER_FILE, user + "\n")


def remembered_user(job: JobId) -> str:
    try:
        return (jobs_dir() / job.host() / USER_FILE).read_text().strip()
    except OSError:
        return ""


def prune(running: set[JobId]) -> None:
    """Remove the files of jobs no longer running (``job-32`` and ``job-32.0`` are one job)."""
    try:
        entries = list(jobs_dir().iterdir())
    except FileNotFoundError:
        return
    for entry in entries:
        try:
            job = parse_host(entry.name)
        except BadJobId:
            continue
        if job not in running:
            shutil.rmtree(entry, ignore_errors=True)


def _write(directory: Path, name: str, text: str) -> Path:
    return write_private(directory / name, text)
