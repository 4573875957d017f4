"""A job under one account, reached by its owner from another; a stranger is turned away."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from accounts import Account, account, ensure_venv
from conftest import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creating test accounts needs root")


@pytest.fixture(scope="module")
def pool():
    """Accounts cjp-job (runs the job), cjp-owner (owns it), cjp-other; a shared queue."""
    ensure_venv()
    job_user, owner, other = account("job"), account("owner"), account("other")
    shared = Path(tempfile.mkdtemp(prefix="cjp-shared-queue-"))
    os.chmod(shared, 0o1777)
    env = {"CONDOR_JOB_PROXY_QUEUE": str(shared)}
    for user in (owner, other):
        # Sessions here end when ssh does, so tests can see them go (as in conftest's bench);
        # these accounts would otherwise share connections in /tmp/cjp-<uid>.
        user.run("sh", "-c", "mkdir -p ~/.config/condor-job-proxy && "
                 "echo 'control_master = false' > ~/.config/condor-job-proxy/config.toml")
        result = user.run("condor-job-proxy", "setup", "--yes", env=env)
        assert result.returncode == 0, result.stderr
    keys = Path(tempfile.mkdtemp(prefix="cjp-owner-keys-"))
    (keys / "owner.pub").write_bytes(owner.run("condor-job-proxy", "pubkey", env=env).stdout)
    workdir = Path(tempfile.mkdtemp(prefix="cjp-job-cwd-"))
    shutil.chown(keys, job_user.name)
    shutil.chown(workdir, job_user.name)
    stderr = open(workdir.parent / f"{workdir.name}.starter.err", "wb")
    starter = job_user.popen("condor-job-starter", "run", "--authorized-keys-file",
                             str(keys / "owner.pub"), "--", "sleep", "900",
                             env={**env, "MARKER": "in-the-job", "TMPDIR": str(workdir)},
                             cwd=workdir, stderr=stderr, stdin=subprocess.DEVNULL)
    err_file = Path(stderr.name)
    assert wait_until(lambda: "running: ssh" in err_file.read_text(), timeout=20), err_file.read_text()
    host = err_file.read_text().split("running: ssh ")[1].split()[0]
    yield {"job": job_user, "owner": owner, "other": other, "env": env, "host": host,
           "cwd": workdir, "starter": starter}
    starter.terminate()
    starter.wait(10)
    for path in (shared, keys, workdir):
        shutil.rmtree(path, ignore_errors=True)


def test_owner_reaches_job_under_another_account(pool) -> None:
    """By typing the job's account name: another uid's job is never entered on the include's
    say-so (the include has no Host block for it)."""
    owner: Account = pool["owner"]
    assert owner.run("condor-job-proxy", "config", "refresh", env=pool["env"]).returncode == 0
    result = owner.run("ssh", "-o", "BatchMode=yes", "-l", pool["job"].name, pool["host"],
                       "whoami; pwd; echo $MARKER", env=pool["env"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == [pool["job"].name, str(pool["cwd"]), "in-the-job"]


def test_owner_gets_a_terminal_in_the_job(pool) -> None:
    owner: Account = pool["owner"]
    owner.run("condor-job-proxy", "config", "refresh", env=pool["env"])
    result = owner.run("ssh", "-tt", "-o", "BatchMode=yes", "-l", pool["job"].name, pool["host"],
                       "tty; stty size", env=pool["env"], input=b"")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.decode().replace("\r", "").split("\n")
    assert lines[0].startswith("/dev/pts/"), lines
    assert len(lines[1].split()) == 2


def test_doctor_says_the_job_gives_terminals(pool) -> None:
    """The job's account is not in group tty, but the starter has libnss-wrapper for sshd."""
    result = pool["owner"].run("condor-job-proxy", "doctor", pool["host"], env=pool["env"])
    assert result.returncode == 0, result.stderr
    assert "terminals: yes (ssh -t and interactive logins get one)" in result.stdout.decode()


def _job_sshds(pool) -> list[str]:
    return subprocess.run(["pgrep", "-u", pool["job"].name, "-x", "sshd"], capture_output=True,
                          text=True).stdout.split()


def test_stranger_is_refused_and_no_sshd_starts(pool) -> None:
    other: Account = pool["other"]
    assert wait_until(lambda: not _job_sshds(pool))   # sessions of earlier tests have ended
    result = other.run("ssh", "-o", "BatchMode=yes", "-l", pool["job"].name, pool["host"], "true",
                       env=pool["env"])
    assert result.returncode == 255
    assert "not the job's owner" in result.stderr.decode()
    assert not _job_sshds(pool)
    assert not list(pool["cwd"].glob("cjp-starter-*/cjp-session-*"))


def test_record_planted_by_another_user_is_not_trusted(pool) -> None:
    other: Account = pool["other"]
    queue = Path(pool["env"]["CONDOR_JOB_PROXY_QUEUE"])
    job_uid = pool["job"].run("id", "-u").stdout.decode().strip()
    forged = ('{"cluster": 777, "proc": 0, "owner": "%s", "owner_uid": %s, '
              '"state": "running", "starter_pid": 1, "starter_address": "127.0.0.1:9", '
              '"starter_key": "ssh-ed25519 AAAA"}' % (pool["job"].name, job_uid))
    assert other.run("sh", "-c", f"umask 022; printf '%s' '{forged}' > {queue}/777.0.json").returncode == 0
    result = pool["owner"].run("ssh", "-o", "BatchMode=yes", "job-777.0", "true", env=pool["env"])
    assert result.returncode == 255
    assert "refusing job 777.0" in result.stderr.decode() and "not by the job's owner" in result.stderr.decode()


def test_owner_uses_condor_ssh_to_job_on_a_job_under_another_account(pool) -> None:
    owner: Account = pool["owner"]
    job_id = pool["host"].removeprefix("job-")
    result = owner.run("condor_ssh_to_job", "-l", pool["job"].name, job_id,   # its account, typed
                       "whoami; echo $MARKER; exit 3", env=pool["env"])
    assert result.returncode == 3, result.stderr
    assert result.stdout.decode().split() == [pool["job"].name, "in-the-job"]
    assert not list(Path("/tmp").glob(f"{owner.name}.condor_ssh_to_job_*"))


def test_stranger_gets_htcondors_not_authorized_from_condor_ssh_to_job(pool) -> None:
    other: Account = pool["other"]
    job_id = pool["host"].removeprefix("job-")
    assert wait_until(lambda: not _job_sshds(pool))   # sessions of earlier tests have ended
    result = other.run("condor_ssh_to_job", job_id, "true", env=pool["env"])
    assert result.returncode == 1
    assert result.stderr.decode() == (f"{other.name} is not authorized for access to the "
                                      f"starter for job {job_id}\n")
    assert not _job_sshds(pool)
