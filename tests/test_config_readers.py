"""Other programs that read the generated include reach a job they have never reached before.

paramiko's ``SSHConfig`` expands only ``~ %h %p %r`` in ProxyCommand, so the include's job host
name is ``%h`` (the include sets no HostName, so it is the name typed); OpenSSH lowercases
``%h`` (its Host patterns match the name as typed), so the proxy takes the prefix in any
case. Real clients, real jobs.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import Job, Workbench

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
