"""The client's own files: the per-job files ssh reads, the pool's session keys, remembered users.

- ``<state>/known_hosts/<host>``: the job's only accepted host keys, pinned before ssh checks
  them (one file per job host name as ssh has it, ``%n``: never the user's own known_hosts).
- ``<state>/identities/<host>``: a link to the private key ssh should offer for that host (an
  EC2 job's key pair file, a pool's session key, else the job-access key); the generated config
  names it as the first IdentityFile, and it is re-pointed before every handoff.
- ``<state>/jobs/<cluster.proc>/``: 0700, per job whatever name or prefix ssh used: the session
  key a pool's own ssh-to-job issued (``ssh_key``) and the login user it reported (``user``);
  removed by ``config refresh`` once the job has left the queue. Key contents are never logged.
- ``<state>/pool_user``: the login name the pool's sessions run as, where its sshd takes only
  that name (an admin turned ``CONDOR_SSH_TO_JOB_FAKE_PASSWD_ENTRY`` off): learnt from the first
  job reached, so the next job's first connect (and its Host block) already uses it. The state
  directory belongs to one config, which names one pool.

Every file is written whole and atomically, so ssh and concurrent connects (the connect daemon
serves them in threads) see the old content or the new, never part of one.
"""
from __future__ import annotations

import os
from pathlib import Path

from condor_job_proxy.common import paths
from condor_job_proxy.common.files import make_private_dir, temp_name, write_private
from condor_job_proxy.common.jobid import BadJobId, JobId, parse_job_id

SESSION_KEY = "ssh_key"
USER_FILE = "user"
POOL_USER_FILE = "pool_user"


# --- known_hosts ------------------------------------------------------------------------------

def known_hosts_dir() -> Path:
    return paths.state_dir() / "known_hosts"


def known_hosts_file(host: str, target: Path | None = None) -> Path:
    """The job's known_hosts file: the one the generated config names, or the default."""
    return target or known_hosts_dir() / host


def pin(host: str, host_key: str, target: Path, note: str = "") -> Path:
    """Make ``host_key`` (one ``<type> <base64>`` a line) ``host``'s only accepted keys in
    ``target``; ``note`` becomes a comment saying where they came from."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = [f"# {note}\n"] if note else []
    lines += [f"{host} {key}\n" for key in host_key.splitlines() if key.strip()]
    return write_private(target, "".join(lines))


def read_pins(path: Path) -> tuple[str, list[str]]:
    """(the note, the ``<type> <base64>`` keys) of a file ``pin`` wrote; empty when there is none."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return "", []
    note = lines[0][2:] if lines and lines[0].startswith("# ") else ""
    keys = [" ".join(line.split()[1:3]) for line in lines
            if line.strip() and not line.startswith("#") and len(line.split()) >= 3]
    return note, keys


# --- identity links ---------------------------------------------------------------------------

identities_dir = paths.identities_dir


def point_identity(host: str, key_file: Path, target: Path | None = None) -> Path:
    """Make the job's identity name a link to ``key_file``."""
    link = target or identities_dir() / host
    wanted = os.path.abspath(key_file)
    try:
        if os.readlink(link) == wanted:
            return link
    except OSError:
        pass
    link.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = temp_name(link)
    temp.unlink(missing_ok=True)
    os.symlink(wanted, temp)
    os.replace(temp, link)
    return link


# --- per-job files, keyed by job id -----------------------------------------------------------

def jobs_dir() -> Path:
    return paths.state_dir() / "jobs"


def job_dir(job: JobId) -> Path:
    """The job's directory, created 0700."""
    return make_private_dir(jobs_dir() / str(job))


def install_session_key(job: JobId, private_key: str) -> Path:
    """Write the session's client key 0600, replacing the previous one atomically."""
    return write_private(job_dir(job) / SESSION_KEY, private_key)


def remember_user(job: JobId, user: str) -> None:
    """The login name the job's sessions run as, learnt from the pool; read by list_jobs."""
    if remembered_user(job) != user:
        write_private(job_dir(job) / USER_FILE, user + "\n")


def remembered_user(job: JobId) -> str:
    try:
        return (jobs_dir() / str(job) / USER_FILE).read_text().strip()
    except OSError:
        return ""


def remember_pool_user(user: str) -> None:
    """The login name the pool's sshd takes (it refused others): the default for new jobs."""
    target = paths.state_dir() / POOL_USER_FILE
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(target, user + "\n")


def login_user(job: JobId) -> str:
    """The name learnt for this job, else the one learnt for its pool; "" when neither."""
    remembered = remembered_user(job)
    if remembered:
        return remembered
    try:
        return (paths.state_dir() / POOL_USER_FILE).read_text().strip()
    except OSError:
        return ""


def prune(running: set[JobId]) -> None:
    """Remove the files of jobs no longer running."""
    import shutil  # here: the connect path never needs it (nor the bz2 and lzma it imports)
    try:
        entries = list(jobs_dir().iterdir())
    except FileNotFoundError:
        return
    for entry in entries:
        try:
            job = parse_job_id(entry.name)
        except BadJobId:
            continue
        if job not in running:
            shutil.rmtree(entry, ignore_errors=True)
