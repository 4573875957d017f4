"""Other programs that read the generated include reach a job they have never reached before.

paramiko's ``SSHConfig`` expands only ``~ %h %p %r`` in ProxyCommand, so the include's job host
name is ``%h`` (the include sets no HostName, so it is the name typed); OpenSSH lowercases
``%h`` (its Host patterns match the name as typed), so the proxy takes the prefix in any
case. asyncssh opens the IdentityFile and known_hosts files before it runs the ProxyCommand and
reads ``known_hosts/%h`` literally: it checks the session's sshd against the user's host CA.
Real clients, real jobs.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import Job, Workbench
from test_htcondor_pool import Pool, pool  # noqa: F401 - fixture
from test_pool_job_runs import start_pool_starter

# What a paramiko user does with the include: look the host up, run its ProxyCommand, log in
# with its IdentityFile list, and trust the host key the proxy pinned in the job's own file.
PARAMIKO_CLIENT = '''import sys
import paramiko
include, host, known_hosts = sys.argv[1:4]
options = paramiko.SSHConfig.from_path(include).lookup(host)

class PinnedByTheProxy(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client, hostname, key):
        pinned = paramiko.HostKeys(known_hosts).lookup(host) or {}
        if pinned.get(key.get_name()) != key:
            raise paramiko.BadHostKeyException(hostname, key, key)

client = paramiko.SSHClient()
client.set_missing_host_key_policy(PinnedByTheProxy())
client.connect(host, username=options["user"], sock=paramiko.ProxyCommand(options["proxycommand"]),
               key_filename=options["identityfile"], look_for_keys=False, allow_agent=False,
               banner_timeout=20)
print(client.exec_command("echo $MARKER; pwd")[1].read().decode(), end="")
client.close()
'''


def _include(bench: Workbench):
    return bench.root / "config" / "condor-job-proxy" / "ssh_config"


def _known_hosts(bench: Workbench, host: str):
    return bench.root / "state" / "condor-job-proxy" / "known_hosts" / host


def _paramiko(bench: Workbench, host: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PARAMIKO_CLIENT, str(_include(bench)), host,
                           str(_known_hosts(bench, host))], env=bench.env, capture_output=True,
                          timeout=90, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("prefix", ["job-", "Job-"])
def test_paramiko_then_ssh_reach_a_job_through_the_include(bench: Workbench, job: Job,
                                                           prefix: str) -> None:
    """paramiko's %h is the name as typed; OpenSSH's is lowercased (its Host patterns match
    the name as typed), so with capitals in the prefix each has its own per-job files."""
    (bench.root / "config" / "condor-job-proxy" / "config.toml").write_text(
        f'host_prefix = "{prefix}"\ncontrol_master = false\n')
    bench.proxy("config", "refresh", check=True)
    host = f"{prefix}{job.id}"
    assert not _known_hosts(bench, host).exists()     # never reached before
    result = _paramiko(bench, host)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().split() == ["only-in-the-job", str(bench.root / "job0")]
    for typed in (host, host.rpartition(".")[0]):      # job-N.0 and job-N
        result = bench.ssh(typed, "echo $MARKER")
        assert result.returncode == 0, (typed, result.stderr)
        assert result.stdout == b"only-in-the-job\n"
    assert _known_hosts(bench, host.lower()).exists()


# What an asyncssh user does: connect by name with their ssh config, run a command.
ASYNCSSH_CLIENT = '''import asyncio, sys, warnings
warnings.simplefilter("ignore")    # asyncssh's own DSA deprecation warnings
import asyncssh
config, host = sys.argv[1:3]

async def main():
    try:
        async with asyncssh.connect(host, config=[config], connect_timeout=60) as conn:
            print((await conn.run("echo $MARKER; pwd", check=True)).stdout, end="")
    except asyncssh.HostKeyNotVerifiable as err:
        sys.exit(f"host key not verifiable: {err}")
asyncio.run(main())
'''


def _asyncssh(bench: Workbench | Pool, host: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ASYNCSSH_CLIENT, str(bench.ssh_config), host],
                          env=bench.env, capture_output=True, timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("typed", ["{id}", "{cluster}"])
def test_asyncssh_reaches_a_job_it_never_reached_with_the_generated_config(
        bench: Workbench, job: Job, typed: str) -> None:
    """The first connect runs the full proxy command, the second the connect daemon's."""
    host = "job-" + typed.format(id=job.id, cluster=job.id.partition(".")[0])
    assert not _known_hosts(bench, host).exists()     # never reached before
    for _ in range(2):
        result = _asyncssh(bench, host)
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        assert result.stdout.decode().split() == ["only-in-the-job", str(bench.root / "job0")]
    assert bench.ssh(host, "echo $MARKER").stdout == b"only-in-the-job\n"   # OpenSSH as before


@pytest.mark.parametrize("typed", ["{id}", "{cluster}"])
def test_asyncssh_reaches_a_job_started_after_the_last_refresh(bench: Workbench,
                                                               typed: str) -> None:
    """asyncssh opens the job's IdentityFile link before the ProxyCommand runs: the local
    starter made it when it published the job, with no refresh since setup."""
    job = bench.start_job("sleep", "600", env={"MARKER": "only-in-the-job"}, refresh=False)
    host = "job-" + typed.format(id=job.id, cluster=job.id.partition(".")[0])
    result = _asyncssh(bench, host)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().split() == ["only-in-the-job", str(bench.root / "job0")]


def test_asyncssh_refuses_a_job_sshd_whose_host_key_your_ca_did_not_certify(
        bench: Workbench, job: Job) -> None:
    """A known_hosts/%h that trusts another CA (planted, or another user's): the session's
    sshd presents a certificate by the user's own CA, which that file does not trust."""
    other = bench.root / "other_ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    planted = bench.root / "state" / "condor-job-proxy" / "known_hosts" / "%h"
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_text(f"@cert-authority job-* {other.with_suffix('.pub').read_text()}")
    result = _asyncssh(bench, f"job-{job.id}")
    assert result.returncode != 0
    assert b"host key not verifiable" in result.stderr, result.stderr.decode()[-2000:]


def test_asyncssh_reaches_a_pool_job_of_our_starter_it_never_reached(pool: Pool,
                                                                    tmp_path) -> None:
    """The starter publishes its sessions' host key in the job ad (chirp), beside its key."""
    process, scratch, _ = start_pool_starter(pool, 6, tmp_path / "none",
                                             own={"MARKER": "only-in-the-job"})
    try:
        assert pool.proxy("config", "refresh").returncode == 0
        result = _asyncssh(pool, "job-6.0")
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        assert result.stdout.decode().split() == ["only-in-the-job", str(scratch)]
    finally:
        process.terminate()
        process.wait(15)
