"""From a laptop, through the access point, into a pool job that runs no starter of ours.

The pool's own ssh-to-job (the stand-in condor_ssh_to_job, run on the access point by root)
issues a per-session key, the only one the job's sshd accepts: it reaches the laptop inside
the prelude and is kept there 0600, replaced on every connect.
"""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from accounts import Account, account, ensure_venv
from loginsshd import login_sshd
from test_htcondor_native import job, native  # noqa: F401
from test_htcondor_pool import Pool, pool  # noqa: F401
from test_via_access_point import _write_as

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="test accounts and sshd need root")
_POOL_ENV = ("PATH", "PYTHONPATH", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "TMPDIR", "TMP",
             "HTCONDOR_STANDIN_POOL")


@pytest.fixture
def laptop(native: Pool, job: Path):  # noqa: F811
    """cjp-laptop, set up with ``setup --via ap``, where ap is root on the pool's access point."""
    ensure_venv()
    user = account("laptop")
    assert user.run("mkdir", "-m", "700", "-p", str(user.home / ".ssh")).returncode == 0
    assert user.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(user.home / ".ssh" / "id_ed25519")).returncode == 0
    key = (user.home / ".ssh" / "id_ed25519.pub").read_text()
    env = {name: native.env[name] for name in _POOL_ENV}
    with login_sshd(native.root / "sshd", {"root": key}, env) as sshd:
        _write_as(user, user.home / ".ssh" / "config", sshd.host_block("ap", "root"))
        _write_as(user, user.home / ".ssh" / "known_hosts", sshd.known_hosts_line())
        result = user.run("condor-job-proxy", "setup", "--yes", "--via", "ap", "--via-command",
                          f"{sys.executable} -m condor_job_proxy")
        assert result.returncode == 0, result.stderr
        yield user


def _session_key(user: Account) -> Path:
    return user.home / ".local" / "state" / "condor-job-proxy" / "jobs" / "32.0" / "ssh_key"


def test_laptop_logs_into_a_pool_job_with_the_session_key_from_the_prelude(
        laptop: Account, job: Path) -> None:  # noqa: F811
    result = laptop.run("ssh", "-o", "BatchMode=yes", "job-32.0", 'pwd; echo "$MARKER"',
                        input=b"", timeout=90)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == [str(job), "only-in-the-job"]
    key = _session_key(laptop)
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    identity = key.parents[2] / "identities" / "job-32.0"
    assert os.readlink(identity) == str(key)


def test_session_key_on_the_laptop_is_replaced_on_the_next_connect(
        laptop: Account, job: Path) -> None:  # noqa: F811
    ssh = ("ssh", "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
           "job-32.0", "true")
    assert laptop.run(*ssh, input=b"", timeout=90).returncode == 0
    first = _session_key(laptop).read_bytes()
    assert laptop.run(*ssh, input=b"", timeout=90).returncode == 0
    assert _session_key(laptop).read_bytes() != first
