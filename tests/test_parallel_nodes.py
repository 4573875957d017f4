"""Nodes of parallel-universe jobs: ``ssh job-N.P.K`` reaches node K, as does
``condor_ssh_to_job N.P.K``.

A ``universe = parallel`` job is one job ad (N.P) whose nodes the schedd finds by index; the
stand-in pool and tool model it so (tests/htcondor_standin: ``parallel_job_ad``, the tool's
``node_ad``). Jobs that run no starter of ours go through the pool's own tool; a parallel job
whose nodes run our starter gets one published address and key per node, each reached on its own.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from htcondor_standin.execute import CONDOR_BIN, classad
from htcondor_standin.htcondor2._pool import parallel_job_ad
from jobstart import end_job, wait_for_job_line
from test_htcondor_native import native, ssh, wrapper_first_on_path  # noqa: F401
from test_htcondor_pool import Pool, _me, _one_line_failure, pool  # noqa: F401

SLOTS = ["slot1@exec1.test", "slot1@exec2.test"]


@pytest.fixture
def parallel(native: Pool):
    """Job 25.0: a running two-node parallel job (a real process), no attributes of ours."""
    iwd = native.root / "iwd"
    iwd.mkdir()
    process = subprocess.Popen(["sleep", "600"])
    native.add_job(25, **{**parallel_job_ad(25, _me(), SLOTS), "Iwd": str(iwd),
                          "StandinJobPid": process.pid})
    yield iwd
    process.kill()
    process.wait()


@pytest.mark.parametrize("node", ["0", "1"])
def test_ssh_to_each_node_of_a_parallel_job_reaches_that_node(native: Pool, parallel: Path,
                                                               node: str) -> None:
    result = ssh(native, f"job-25.0.{node}", 'echo "$_CONDOR_PROCNO"; pwd')
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == [node, str(parallel)]


def test_scp_from_a_node_of_a_parallel_job(native: Pool, parallel: Path) -> None:
    (parallel / "out.dat").write_text("node result\n")
    result = ssh(native, "job-25.0.1:out.dat", str(native.root / "got.dat"), tool="scp")
    assert result.returncode == 0, result.stderr
    assert (native.root / "got.dat").read_text() == "node result\n"


def test_ssh_to_a_parallel_job_without_a_node_names_its_nodes(native: Pool, parallel: Path) -> None:
    line = _one_line_failure(native.proxy("connect", "job-25.0", _me()))
    assert line == ("condor-job-proxy: job 25.0 is a parallel job of 2 nodes: name one, "
                    "job-25.0.0 to job-25.0.1")


def test_listing_and_include_name_each_node_never_the_job(native: Pool, parallel: Path) -> None:
    assert native.proxy("jobs", "--names").stdout.decode() == "job-25.0.0\njob-25.0.1\n"
    assert native.proxy("config", "refresh").returncode == 0
    include = native.proxy("config", "show").stdout.decode()
    assert "Host job-25.0.0\n" in include and "Host job-25.0.1\n" in include
    assert "job-25.0 " not in include and "job-25.0\n" not in include and "job-25 " not in include


def test_condor_ssh_to_job_reaches_a_node_as_htcondors_tool_does(native: Pool,
                                                                  parallel: Path) -> None:
    env = wrapper_first_on_path(native)
    result = subprocess.run(["condor_ssh_to_job", "25.0.1", "echo $_CONDOR_PROCNO"], env=env,
                            capture_output=True, stdin=subprocess.DEVNULL, timeout=90)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"1\n", b"")


def test_condor_ssh_to_job_on_a_parallel_job_without_a_node_says_what_htcondor_says(
        native: Pool, parallel: Path) -> None:
    env = wrapper_first_on_path(native)
    result = subprocess.run(["condor_ssh_to_job", "25.0", "true"], env=env, capture_output=True,
                            stdin=subprocess.DEVNULL, timeout=90)
    assert (result.returncode, result.stderr.decode()) == (
        1, "This is a parallel job.  Please specify job 25.0.X where X is an integer "
           "from 0 to 1.\n")


@pytest.mark.parametrize("how", ["ssh", "condor_ssh_to_job"])
def test_vanilla_job_named_with_node_zero_is_the_job(native: Pool, how: str) -> None:
    process = subprocess.Popen(["sleep", "600"])
    try:
        native.add_job(18, Iwd=str(native.root), StandinJobPid=process.pid)
        if how == "ssh":
            result = ssh(native, "job-18.0.0", "echo $_CONDOR_JOB_PIDS")
        else:
            result = subprocess.run(["condor_ssh_to_job", "18.0.0", "echo $_CONDOR_JOB_PIDS"],
                                    env=wrapper_first_on_path(native), capture_output=True,
                                    stdin=subprocess.DEVNULL, timeout=90)
        assert (result.returncode, result.stdout) == (0, f"{process.pid}\n".encode()), result.stderr
    finally:
        process.kill()
        process.wait()


# --- a parallel job whose nodes run our starter ------------------------------------------------

def _node_starter(pool: Pool, node: int) -> subprocess.Popen:
    """Node ``node`` of job 26.0 under our starter, as HTCondor's starter runs a parallel node:
    the job's one ad, the node's number in $_CONDOR_PROCNO, chirp to the same job ad."""
    scratch = pool.root / f"dir_{node}"
    scratch.mkdir()
    ad = pool.job_ad(26)
    (scratch / ".job.ad").write_text("".join(f"{k} = {classad(v)}\n" for k, v in ad.items()))
    (scratch / ".machine.ad").write_text('MyAddress = "<127.0.0.1:9618>"\n')
    (scratch / ".chirp.config").write_text(json.dumps(
        {"pool": str(pool.file), "schedd": "ap.test", "job": "26.0"}))
    env = {**pool.env, "_CONDOR_JOB_AD": str(scratch / ".job.ad"),
           "_CONDOR_MACHINE_AD": str(scratch / ".machine.ad"), "_CONDOR_SCRATCH_DIR": str(scratch),
           "_CONDOR_PROCNO": str(node), "_CONDOR_NPROCS": "2",
           "_CONDOR_BIN": str(CONDOR_BIN), "TMPDIR": str(scratch)}   # chirp is beside it
    err = open(pool.root / f"starter{node}.err", "wb")
    with err:
        process = subprocess.Popen([sys.executable, "-m", "condor_job_proxy.starter", "run", "--", "sleep", "600"],
                                   cwd=scratch, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=err)
    assert wait_for_job_line(process, pool.root / f"starter{node}.err") == f"26.0.{node}"
    return process


@pytest.fixture
def starter_nodes(pool: Pool):
    pool.add_job(26, **{**parallel_job_ad(26, _me(), SLOTS), "CondorJobProxyOwnerKey":
                        pool.public_key(), "Cmd": "/usr/local/bin/condor-job-starter"})
    started = []
    try:
        for node in (0, 1):
            started.append(_node_starter(pool, node))
        yield started
    finally:
        for process in started:
            end_job(process)


def test_each_node_running_our_starter_publishes_its_own_address_and_key(
        pool: Pool, starter_nodes: list) -> None:
    ad = pool.job_ad(26)
    addresses = {ad[f"CondorJobProxyAddress_{node}"] for node in (0, 1)}
    keys = {ad[f"CondorJobProxyKey_{node}"] for node in (0, 1)}
    assert len(addresses) == 2 and len(keys) == 2
    assert "CondorJobProxyAddress" not in ad and "CondorJobProxyKey" not in ad


@pytest.mark.parametrize("node", ["0", "1"])
def test_ssh_reaches_each_node_that_runs_our_starter(pool: Pool, starter_nodes: list,
                                                      node: str) -> None:
    result = subprocess.run(["ssh", "-F", str(pool.ssh_config), "-o", "BatchMode=yes",
                             f"job-26.0.{node}", 'echo "$_CONDOR_PROCNO"'], env=pool.env,
                            capture_output=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, f"{node}\n".encode()), result.stderr


def test_ssh_to_a_node_past_the_last_names_the_nodes(native: Pool, parallel: Path) -> None:
    line = _one_line_failure(native.proxy("connect", "job-25.0.2", _me()))
    assert line.endswith("job 25.0 is a parallel job of 2 nodes: name one, "
                         "job-25.0.0 to job-25.0.1")


def test_idle_parallel_job_lists_its_nodes_and_gets_no_host_block(native: Pool) -> None:
    native.add_job(27, **parallel_job_ad(27, _me(), SLOTS, status=1))
    listed = json.loads(native.proxy("jobs", "--json").stdout)
    assert [(job["job"], job["state"]) for job in listed] == [("27.0.0", "idle"),
                                                              ("27.0.1", "idle")]
    assert native.proxy("config", "refresh").returncode == 0
    assert "job-27" not in native.proxy("config", "show").stdout.decode()
    line = _one_line_failure(native.proxy("connect", "job-27.0.1", _me()))
    assert line == "condor-job-proxy: job 27.0.1 is not running yet (idle in the queue)"


def test_parallel_node_starter_without_its_node_number_refuses_to_start(pool: Pool) -> None:
    """Without $_CONDOR_PROCNO it could only publish over another node's address."""
    scratch = pool.root / "scratch"
    scratch.mkdir()
    ad = parallel_job_ad(28, _me(), SLOTS)
    (scratch / ".job.ad").write_text("".join(f"{k} = {classad(v)}\n" for k, v in ad.items()))
    (scratch / ".machine.ad").write_text('MyAddress = "<127.0.0.1:9618>"\n')
    env = {**pool.env, "_CONDOR_JOB_AD": str(scratch / ".job.ad"),
           "_CONDOR_MACHINE_AD": str(scratch / ".machine.ad"), "_CONDOR_SCRATCH_DIR": str(scratch)}
    result = subprocess.run([sys.executable, "-m", "condor_job_proxy.starter", "run", "--", "true"], cwd=scratch,
                            env=env, capture_output=True, timeout=60)
    assert (result.returncode, result.stderr.decode()) == (
        1, "condor-job-starter: job 28.0 is a parallel-universe job but $_CONDOR_PROCNO does not "
           "give this node's number\n")


def test_condor_ssh_to_job_on_our_parallel_job_without_a_node_words_it_as_htcondor(
        pool: Pool, starter_nodes: list) -> None:
    env = wrapper_first_on_path(pool)
    result = subprocess.run(["condor_ssh_to_job", "26.0", "true"], env=env, capture_output=True,
                            stdin=subprocess.DEVNULL, timeout=90)
    assert (result.returncode, result.stderr.decode()) == (
        1, "This is a parallel job.  Please specify job 26.0.X where X is an integer "
           "from 0 to 1.\n")
    result = subprocess.run(["condor_ssh_to_job", "26.0.1", "echo $_CONDOR_PROCNO"], env=env,
                            capture_output=True, stdin=subprocess.DEVNULL, timeout=90)
    assert (result.returncode, result.stdout) == (0, b"1\n"), result.stderr


def test_stand_in_schedd_refuses_a_running_parallel_ad_without_its_nodes(pool: Pool) -> None:
    """So that no test here passes on a parallel job's shape a real schedd never shows."""
    ad = parallel_job_ad(29, _me(), SLOTS)
    del ad["RemoteHosts"]
    pool.add_job(29, **ad)
    line = _one_line_failure(pool.proxy("connect", "job-29.0.0", _me()))
    assert "running parallel job 29.0 has no RemoteHosts" in line
