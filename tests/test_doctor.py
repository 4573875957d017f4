"""`condor-job-proxy doctor JOB` says whether a connect would get in, in a connect's words.

A shared local queue and real accounts: cjp-djob runs the job under our starter, giving
cjp-downer's key with --authorized-keys-file; cjp-dstranger has no key in it. Pool cases use the
stand-in pool (HTCondor's schedd and tools only).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from accounts import Account, account, ensure_venv
from conftest import wait_until
from test_htcondor_pool import (STANDIN, Pool, _me, pool, pool_job,  # noqa: F401 - fixtures
                                two_hosts)

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="creating test accounts needs root")


@pytest.fixture(scope="module")
def shared():
    """cjp-downer's key lets it into cjp-djob's job; cjp-dstranger's does not."""
    ensure_venv()
    job_user, owner, stranger = account("djob"), account("downer"), account("dstranger")
    queue = Path(tempfile.mkdtemp(prefix="cjp-doctor-queue-"))
    os.chmod(queue, 0o1777)
    env = {"CONDOR_JOB_PROXY_QUEUE": str(queue)}
    for user in (owner, stranger):
        result = user.run("condor-job-proxy", "setup", "--yes", env=env)
        assert result.returncode == 0, result.stderr
    keys = Path(tempfile.mkdtemp(prefix="cjp-doctor-keys-"))
    (keys / "owner.pub").write_bytes(owner.run("condor-job-proxy", "pubkey", env=env).stdout)
    workdir = Path(tempfile.mkdtemp(prefix="cjp-doctor-cwd-"))
    shutil.chown(keys, job_user.name)
    shutil.chown(workdir, job_user.name)
    err_file = workdir.parent / f"{workdir.name}.starter.err"
    with open(err_file, "wb") as stderr:
        starter = job_user.popen("condor-job-starter", "run", "--authorized-keys-file",
                                 str(keys / "owner.pub"), "--", "sleep", "900",
                                 env={**env, "TMPDIR": str(workdir)}, cwd=workdir,
                                 stderr=stderr, stdin=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: "running: ssh" in err_file.read_text(), timeout=20)
        host = err_file.read_text().split("running: ssh ")[1].split()[0]
        yield {"job": job_user, "owner": owner, "stranger": stranger, "env": env, "host": host,
               "queue": queue}
    finally:
        starter.terminate()
        starter.wait(10)
        for path in (queue, keys, workdir):
            shutil.rmtree(path, ignore_errors=True)


def _doctor(who: Account, shared: dict, job: str) -> subprocess.CompletedProcess:
    return who.run("condor-job-proxy", "doctor", job, env=shared["env"])


@as_root
def test_stranger_runs_doctor_and_hears_the_connects_refusal(shared) -> None:
    stranger: Account = shared["stranger"]
    result = _doctor(stranger, shared, shared["host"])
    assert result.returncode == 1, result
    out = result.stdout.decode()
    connect = stranger.run("condor-job-proxy", "connect", shared["host"], shared["job"].name,
                           env=shared["env"], input=b"")
    assert connect.returncode == 255
    said = connect.stderr.decode().strip().removeprefix("condor-job-proxy: ")
    assert "not the job's owner" in said
    assert f"state: not reachable now: {said}\n" in out, out


@as_root
def test_owner_given_the_key_runs_doctor_and_may_enter(shared) -> None:
    result = _doctor(shared["owner"], shared, shared["host"])
    assert result.returncode == 0, result
    assert (f"state: running, and you may enter it ({shared['job'].name}'s job, whose starter "
            "was given your key)\n") in result.stdout.decode()


@as_root
def test_doctor_on_a_job_not_in_the_queue_exits_non_zero(shared) -> None:
    result = _doctor(shared["owner"], shared, "job-9999.0")
    assert result.returncode == 1, result
    assert "state: not reachable now: job 9999.0 is not in the queue" in result.stdout.decode()


@as_root
def test_doctor_piped_into_head_ends_without_a_traceback(shared) -> None:
    result = shared["owner"].run("sh", "-c", f"condor-job-proxy doctor {shared['host']} | true",
                                 env=shared["env"])
    assert b"Traceback" not in result.stderr and b"BrokenPipe" not in result.stderr, result.stderr


# Pool jobs (the stand-in schedd; this process's own account owns the jobs).

def _history(pool: Pool, *ads: dict) -> None:
    state = json.loads(pool.file.read_text())
    state["schedds"]["ap.test"]["history"] = [
        {"ClusterId": 0, "ProcId": 0, "Owner": _me(), **ad} for ad in ads]
    pool.file.write_text(json.dumps(state))


def test_doctor_on_a_completed_pool_job_reads_the_history(pool: Pool) -> None:
    _history(pool, {"ClusterId": 50, "JobStatus": 4, "ExitCode": 3, "ExitBySignal": False})
    result = pool.proxy("doctor", "job-50.0")
    assert result.returncode == 1, result
    assert ("state: not reachable: it has left the queue: job 50.0 has completed with exit "
            "status 3\n") in result.stdout.decode()


def test_doctor_on_a_removed_pool_job_says_by_whom(pool: Pool) -> None:
    _history(pool, {"ClusterId": 51, "JobStatus": 3,
                    "RemoveReason": "via condor_rm (by user alice)"})
    out = pool.proxy("doctor", "51").stdout.decode()
    assert ("state: not reachable: it has left the queue: job 51.0 was removed (via condor_rm "
            "(by user alice))\n") in out


def test_doctor_on_a_pool_job_never_seen_exits_non_zero(pool: Pool) -> None:
    result = pool.proxy("doctor", "52")
    assert result.returncode == 1, result
    assert "job 52.0 is not in the queue of the local schedd, nor in its history" in \
        result.stdout.decode()


def test_doctor_on_an_idle_pool_job_gives_the_match_analysis(pool: Pool) -> None:
    state = json.loads(pool.file.read_text())
    state["startds"] = [{"Name": "slot1@exec.test", "State": "Unclaimed", "Cpus": 4,
                         "Memory": 1024, "Disk": 10_000_000, "GPUs": 0}]
    pool.file.write_text(json.dumps(state))
    pool.add_job(53, JobStatus=1, RequestMemory=4096, RequestCpus=1)
    result = pool.proxy("doctor", "53")
    assert result.returncode == 1, result
    assert ("why idle: 0 of 1 slots match its requests; 1 have too few MB memory (asks 4096, "
            "largest 1024)") in result.stdout.decode()


def test_doctor_names_htcondors_tool_not_our_drop_in(pool: Pool) -> None:
    """Our package's condor_ssh_to_job is first on PATH; the transport runs HTCondor's."""
    ours = Path(sys.executable).parent / "condor_ssh_to_job"
    assert ours.exists()
    pool.env["PATH"] = f"{ours.parent}:{STANDIN / 'bin'}:{os.environ['PATH']}"
    pool.add_job(54)
    result = pool.proxy("doctor", "54")
    assert result.returncode == 0, result
    assert (f"check HTCondor's condor_ssh_to_job: {STANDIN / 'bin' / 'condor_ssh_to_job'}\n"
            in result.stdout.decode())


def test_doctor_without_htcondors_tool_says_the_native_job_cannot_be_reached(pool: Pool) -> None:
    pool.env["PATH"] = "/usr/bin:/bin"
    pool.add_job(55)
    result = pool.proxy("doctor", "55")
    assert result.returncode == 1, result
    assert "check HTCondor's condor_ssh_to_job: missing" in result.stdout.decode()


def _doctor_on_submit_host(pool: Pool, hosts, job: str, **env: str) -> subprocess.CompletedProcess:
    argv = hosts.on_submit(sys.executable, "-m", "condor_job_proxy", "doctor", job)
    return subprocess.run(argv, env={**pool.env, **env}, capture_output=True, timeout=60)


def test_doctor_asks_a_pool_jobs_starter_whether_it_lets_the_key_in(pool: Pool, two_hosts,
                                                                   pool_job) -> None:
    """The job's ad names this account as owner; only the key the ad publishes gets in."""
    result = _doctor_on_submit_host(pool, two_hosts, pool_job.host)
    assert result.returncode == 0, result
    assert "state: running, and you may enter it\n" in result.stdout.decode()
    other = pool.root / "other-config"
    (other / "condor-job-proxy").mkdir(parents=True)
    shutil.copy(pool.root / "config" / "condor-job-proxy" / "config.toml",
                other / "condor-job-proxy")   # the same pool, another job-access key
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(other / "condor-job-proxy" / "id_ed25519")], check=True)
    refused = _doctor_on_submit_host(pool, two_hosts, pool_job.host, XDG_CONFIG_HOME=str(other))
    assert refused.returncode == 1, refused
    assert (f"state: not reachable now: job {pool_job.id}: you are not the job's owner: access "
            f"to job {pool_job.id} denied: key SHA256:") in refused.stdout.decode()


def _submit_running(pool: Pool, description: str) -> str:
    """Submit through the stand-in condor_submit (the ad as condor_submit writes it), then
    let it run on an execute host; its job id."""
    submit = pool.root / "job.sub"
    submit.write_text(f"executable = /usr/bin/sleep\narguments = 600\n{description}\nqueue\n")
    result = subprocess.run([sys.executable, str(STANDIN / "bin" / "condor_submit"), str(submit)],
                            env=pool.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    cluster = int(result.stdout.split("cluster ")[1].rstrip(".\n"))
    state = json.loads(pool.file.read_text())
    ad = next(ad for ad in state["schedds"]["ap.test"]["jobs"] if ad["ClusterId"] == cluster)
    ad.update(JobStatus=2, JobCurrentStartDate=1700000000, RemoteHost="slot1@exec.test")
    pool.file.write_text(json.dumps(state))
    return f"job-{cluster}.0"


@pytest.mark.parametrize("description, runtime", [
    ("universe = docker\ndocker_image = htcondor/mini:9.12-el7", "run in Docker: "),
    ("universe = container\ncontainer_image = /cvmfs/images/el9.sif", "run in Apptainer: "),
    ("universe = container\ncontainer_image = docker://htcondor/mini:9.12-el7",
     "run in Docker or Apptainer, as the execute node has: "),
])
def test_doctor_on_a_pool_container_job_says_what_lands_beside_the_container(
        pool: Pool, description: str, runtime: str) -> None:
    job = _submit_running(pool, description)
    out = pool.proxy("doctor", job).stdout.decode()
    assert "transport: htcondor-native" in out, out
    line = next(line for line in out.splitlines() if line.startswith("container: "))
    assert runtime in line, out
    assert "takes shells and commands into the container" in line
    assert "sftp, scp, rsync and port forwards (-L, -R, -D) land on the execute host beside it" \
        in line
    assert "runs condor-job-starter as its wrapper inside the container gets all of them" in line

