"""What the job listings show: `config refresh` on a shared queue, `jobs --json`, a node id of
a job without nodes, and a laptop's `jobs`, `doctor` and hop failures after `setup --via`.

Real accounts throughout: the shared local queue of tests/test_doctor.py, and the laptop and
access point (a real login sshd) of tests/test_via_access_point.py.
"""
from __future__ import annotations

import json
import os

import pytest

from accounts import Account
from conftest import free_port
from test_doctor import shared  # noqa: F401 - fixture
from test_via_access_point import _write_as, via  # noqa: F401 - fixture

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="test accounts and sshd need root")


def _include(who: Account) -> str:
    return (who.home / ".config" / "condor-job-proxy" / "ssh_config").read_text()


def test_stranger_refreshing_on_a_shared_queue_gets_no_host_for_others_jobs(shared) -> None:
    stranger: Account = shared["stranger"]
    result = stranger.run("condor-job-proxy", "config", "refresh", env=shared["env"])
    assert result.returncode == 0, result.stderr
    include = _include(stranger)
    assert f"Host {shared['host']}" not in include
    assert "# 1 other job in the queue left out: other users' jobs (enter one on purpose: " \
           "ssh ACCOUNT@job-N)." in include


def test_owner_given_the_key_refreshing_gets_no_block_for_another_accounts_job(shared) -> None:
    """Another uid's job is entered only by typing its account's name, never on the
    include's say-so, even when its starter lets your key in."""
    owner: Account = shared["owner"]
    assert owner.run("condor-job-proxy", "config", "refresh", env=shared["env"]).returncode == 0
    include = _include(owner)
    assert f"Host {shared['host']}" not in include and "1 other job" in include


def test_jobs_json_carries_the_jobs_accounting(shared) -> None:
    result = shared["owner"].run("condor-job-proxy", "jobs", "--json", env=shared["env"])
    assert result.returncode == 0, result.stderr
    entry = next(e for e in json.loads(result.stdout) if f"job-{e['job']}" == shared["host"])
    assert entry["pids"] and all(isinstance(pid, int) for pid in entry["pids"])
    assert isinstance(entry["memory_kb"], int) and isinstance(entry["cpu_seconds"], float)


def test_ssh_to_a_node_of_a_job_without_nodes_says_the_job_has_none(shared) -> None:
    host = shared["host"]
    result = shared["owner"].run("condor-job-proxy", "connect", f"{host}.0", shared["job"].name,
                                 env=shared["env"], input=b"")
    assert result.returncode == 255
    job = host.removeprefix("job-")
    assert result.stderr.decode() == (f"condor-job-proxy: job {job} has no node 0: it is no "
                                      "parallel-universe job (leave the node out of the name)\n")


# The laptop (setup --via ap).

def test_laptop_jobs_lists_the_access_points_jobs(via) -> None:
    laptop: Account = via["laptop"]
    table = laptop.run("condor-job-proxy", "jobs")
    assert table.returncode == 0, table.stderr
    assert via["host"].removeprefix("job-") in table.stdout.decode()
    names = laptop.run("condor-job-proxy", "jobs", "--names")
    assert names.stdout.decode().split() == [via["host"]], names


def test_laptop_doctor_asks_the_access_point(via) -> None:
    result = via["laptop"].run("condor-job-proxy", "doctor", via["host"])
    assert result.returncode == 0, result
    out = result.stdout.decode()
    assert f"job {via['host'].removeprefix('job-')}: through the access point ap (setup --via)" in out
    assert "ap: state: running, and you may enter it\n" in out
    missing = via["laptop"].run("condor-job-proxy", "doctor", "job-9999.0")
    assert missing.returncode == 1
    assert "ap: state: not reachable now: job 9999.0 is not in the queue" in missing.stdout.decode()


def _hop_config(via: dict, extra: str) -> None:
    laptop: Account = via["laptop"]
    sshd = via["sshd"]
    _write_as(laptop, laptop.home / ".ssh" / "config",
              sshd.host_block("ap", via["ap"].name) + extra)


def test_access_point_down_reaches_the_user_in_the_proxys_line(via) -> None:
    _hop_config(via, f"Host downap\n    HostName 127.0.0.1\n    Port {free_port()}\n")
    result = via["laptop"].run("condor-job-proxy", "connect", "--via", "downap", via["host"],
                               input=b"")
    assert result.returncode == 255
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("condor-job-proxy: downap closed the connection before the "
                               "session was set up (ssh exited with status 255: ssh: connect to "
                               "host 127.0.0.1 port "), lines
    assert lines[0].endswith(": Connection refused)"), lines


def test_access_point_with_a_changed_host_key_says_so_in_the_proxys_line(via) -> None:
    laptop: Account = via["laptop"]
    # Some other ed25519 key (the laptop's own) where the access point's host key was.
    kind, blob = (laptop.home / ".ssh" / "id_ed25519.pub").read_text().split()[:2]
    wrong = f"[127.0.0.1]:{via['sshd'].port} {kind} {blob}\n"
    _write_as(laptop, laptop.home / ".ssh" / "known_hosts_changed", wrong)
    _hop_config(via, f"Host changedap\n    HostName 127.0.0.1\n    Port {via['sshd'].port}\n"
                     f"    UserKnownHostsFile {laptop.home / '.ssh' / 'known_hosts_changed'}\n"
                     "    StrictHostKeyChecking yes\n")
    result = laptop.run("condor-job-proxy", "connect", "--via", "changedap", via["host"], input=b"")
    assert result.returncode == 255
    lines = result.stderr.decode().splitlines()
    assert lines == ["condor-job-proxy: changedap closed the connection before the session was "
                     "set up (ssh exited with status 255: Host key verification failed.)"], lines
