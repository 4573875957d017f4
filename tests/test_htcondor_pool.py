"""Jobs in an HTCondor pool: found through the schedd, reached through the starter as job wrapper.

HTCondor's own daemons and tools cannot run here, so the schedd/collector bindings
(``htcondor2``) and ``condor_chirp`` are stand-ins (tests/htcondor_standin) with the real
interfaces; everything of ours is the real code. The two-host tests put the starter in an
"execute" network namespace and ssh + the proxy in a "submit" one, with real TCP between them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT, wait_for_job_line, wait_until
from htcondor_standin.execute import job_environment
from htcondor_standin.htcondor2._pool import ec2_job_ad, parallel_job_ad

STANDIN = Path(__file__).resolve().parent / "htcondor_standin"
SCHEDD_ADDRESS = "<192.0.2.1:9618?addrs=192.0.2.1-9618>"


@dataclass
class Pool:
    """The stand-in pool file (schedds and job ads) and a user whose config points at it."""
    file: Path
    root: Path
    env: dict[str, str]
    ssh_config: Path

    def add_job(self, cluster: int, schedd: str = "ap.test", **attrs) -> dict:
        ad = {"ClusterId": cluster, "ProcId": 0, "Owner": _me(), "JobStatus": 2,
              "Cmd": "/usr/bin/sleep", "Arguments": "600", "JobCurrentStartDate": 1700000000,
              **attrs}
        state = json.loads(self.file.read_text())
        state["schedds"][schedd]["jobs"].append(ad)
        self.file.write_text(json.dumps(state))
        return ad

    def add_ec2_job(self, cluster: int) -> dict:
        """A running EC2 grid job, its ad as HTCondor's schedd shows it (no EC2 behind it)."""
        instance = {"InstanceId": "i-0123456789abcdef0", "ImageId": "ami-0b7c2f91",
                    "PublicDnsName": "ec2-54-214-235-123.compute-1.amazonaws.com",
                    "KeyName": f"SSH_127 0 0 1 9618_vm {cluster} 0 1700000000"}
        ad = ec2_job_ad(cluster, _me(), "https://ec2.us-east-1.amazonaws.com/", instance,
                        str(self.root / f"job{cluster}.pem"),
                        (str(self.root / "access-key"), str(self.root / "secret-key")),
                        str(self.root))
        return self.add_job(cluster, **ad)

    def job_ad(self, cluster: int, schedd: str = "ap.test") -> dict:
        jobs = json.loads(self.file.read_text())["schedds"][schedd]["jobs"]
        return next(ad for ad in jobs if ad["ClusterId"] == cluster)

    def configure(self, text: str) -> None:
        """config.toml: ``text``, with shared connections off as in conftest's bench (each ssh
        here must be a connect of its own; with no runtime dir they would be on, in /tmp)."""
        (self.root / "config" / "condor-job-proxy" / "config.toml").write_text(
            "control_master = false\n" + text)

    def proxy(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "condor_job_proxy", *args], env=self.env,
                              capture_output=True, timeout=60)

    def public_key(self) -> str:
        return self.proxy("pubkey").stdout.decode().strip()


@pytest.fixture
def pool(tmp_path: Path):
    """A set-up user whose config.toml selects HTCondor, with a stand-in pool of two schedds."""
    pool_file = tmp_path / "pool.json"
    pool_file.write_text(json.dumps({
        "collector": "cm.test", "local_schedd": "ap.test",
        "schedds": {"ap.test": {"address": SCHEDD_ADDRESS, "jobs": []},
                    "ap2.test": {"address": "<192.0.2.3:9618>", "jobs": []}}}))
    env = {key: value for key, value in os.environ.items() if key != "CONDOR_JOB_PROXY_QUEUE"}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_STATE_HOME=str(tmp_path / "state"),
               TMPDIR=str(tmp_path / "tmp"), HTCONDOR_STANDIN_POOL=str(pool_file),
               # The stand-in first, so an installed htcondor package can never shadow it.
               PYTHONPATH=f"{STANDIN}:{ROOT}")
    (tmp_path / "tmp").mkdir()
    (tmp_path / "config" / "condor-job-proxy").mkdir(parents=True)
    created = Pool(pool_file, tmp_path, env, tmp_path / "ssh_config")
    created.configure('resolver = "htcondor"\n')
    setup = created.proxy("setup", "--yes", "--ssh-config", str(created.ssh_config))
    assert setup.returncode == 0, setup.stderr
    yield created
    created.proxy("daemon", "--stop")    # the first connect started one (10 minutes' idle)


def _me() -> str:
    return subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()


def _one_line_failure(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 255, result
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


# --- what the proxy says about jobs it cannot reach -------------------------------------------

@pytest.mark.parametrize("attrs, expected", [
    ({"JobStatus": 1}, "job 5.0 is not running yet (idle in the queue)"),
    ({"JobStatus": 5, "HoldReason": "Error from slot1@ex: memory limit exceeded"},
     "job 5.0 is held: Error from slot1@ex: memory limit exceeded"),
    ({"JobStatus": 4}, "job 5.0 has completed"),
    ({"JobStatus": 3}, "job 5.0 was removed"),
    ({"JobStatus": 7}, "job 5.0 is suspended; try again when it resumes"),
    ({"JobStatus": 6}, "job 5.0 has finished running and is transferring its output"),
], ids=["idle", "held", "completed", "removed", "suspended", "transferring"])
def test_ssh_to_job_that_is_not_running_says_why(pool: Pool, attrs: dict, expected: str) -> None:
    pool.add_job(5, CondorJobProxyOwnerKey=pool.public_key(), **attrs)
    line = _one_line_failure(pool.proxy("connect", "job-5.0", _me()))
    assert line == f"condor-job-proxy: {expected}"


def test_ssh_to_unknown_job_names_the_schedd(pool: Pool) -> None:
    line = _one_line_failure(pool.proxy("connect", "job-99.0", _me()))
    assert line == "condor-job-proxy: job 99.0 is not in the queue of the local schedd"


def test_ec2_grid_job_is_recognised_from_its_ad(pool: Pool) -> None:
    pool.add_ec2_job(8)
    line = _one_line_failure(pool.proxy("connect", "job-8.0", "ec2-user"))
    assert f"its key pair file {pool.root / 'job8.pem'} is missing" in line   # the EC2 path


def test_config_refresh_names_the_ec2_login_user_not_the_submitter(pool: Pool) -> None:
    """The ad names no login user; the Host block names the one connect logs in as."""
    pool.add_ec2_job(11)
    assert pool.proxy("config", "refresh").returncode == 0
    include = pool.proxy("config", "show").stdout.decode()
    assert "Host job-11.0 job-11\n" in include and "User ec2-user\n" in include
    assert f"User {_me()}\n" not in include
    pool.configure('resolver = "htcondor"\n[ec2.users_by_ami]\n"ami-0b7c2f91" = "admin"\n')
    listed = json.loads(pool.proxy("jobs", "--json").stdout)
    assert [(job["job"], job["user"]) for job in listed] == [("11.0", "admin")]


def test_stand_in_schedd_refuses_an_ec2_ad_htcondor_never_writes(pool: Pool) -> None:
    pool.add_job(8, JobUniverse=9, GridResource="ec2 https://ec2.us-east-1.amazonaws.com/",
                 EC2AmiID="ami-0b7c2f91")   # no credentials: condor_submit says no
    line = _one_line_failure(pool.proxy("connect", "job-8.0", "ec2-user"))
    assert "condor_submit refuses EC2 job 8.0 without EC2AccessKeyId" in line


def test_starter_that_has_not_published_yet_asks_to_retry(pool: Pool) -> None:
    pool.add_job(9, CondorJobProxyOwnerKey=pool.public_key())
    line = _one_line_failure(pool.proxy("connect", "job-9.0", _me()))
    assert "has not published its address yet; try again" in line


def test_schedd_unknown_to_the_collector_is_one_line(pool: Pool) -> None:
    pool.configure('schedds = ["nowhere.test"]\npool = "cm.test"\n')
    line = _one_line_failure(pool.proxy("connect", "job-1.0", _me()))
    assert line == ("condor-job-proxy: schedd nowhere.test of pool cm.test is not known to the "
                    "collector")


def test_job_is_found_on_the_second_configured_schedd(pool: Pool) -> None:
    pool.configure('schedds = ["ap.test", "ap2.test"]\n')
    pool.add_job(12, schedd="ap2.test", JobStatus=1)
    line = _one_line_failure(pool.proxy("connect", "job-12.0", _me()))
    assert line == "condor-job-proxy: job 12.0 is not running yet (idle in the queue)"


# --- the generated config and the submit snippet ----------------------------------------------

def test_config_refresh_lists_my_running_jobs_from_every_schedd(pool: Pool) -> None:
    pool.configure('schedds = ["ap.test", "ap2.test"]\n')
    pool.add_job(20, CondorJobProxyUser="slot1_3")
    pool.add_job(21, schedd="ap2.test")
    pool.add_job(22, JobStatus=1)                      # idle: no Host block
    pool.add_job(23, Owner="somebody-else")            # not mine
    assert pool.proxy("config", "refresh").returncode == 0
    include = pool.proxy("config", "show").stdout.decode()
    assert "Host job-20.0 job-20\n" in include and "User slot1_3\n" in include
    assert "Host job-21.0 job-21\n" in include
    assert "job-22.0" not in include and "job-23.0" not in include
    listed = json.loads(pool.proxy("jobs", "--json").stdout)
    assert [job["job"] for job in listed] == ["20.0", "21.0", "22.0"]   # all my jobs, by id


def test_submit_snippet_carries_my_public_key(pool: Pool) -> None:
    snippet = pool.proxy("submit-snippet").stdout.decode()
    assert "+WantIOProxy = true\n" in snippet
    assert f'+CondorJobProxyOwnerKey = "{pool.public_key()}"' in snippet
    assert any(line.startswith("executable = ") and line.endswith("condor-job-starter")
               for line in snippet.splitlines())
    assert "arguments = \"'run' '--' './my-program'\"" in snippet


def test_local_queue_connect_never_imports_the_bindings(tmp_path: Path) -> None:
    probe = ("import sys\nfrom condor_job_proxy.proxycmd.connect import connect\n"
             "from condor_job_proxy.proxycmd.errors import ProxyError\n"
             "try:\n    connect('job-1.0')\nexcept ProxyError:\n    pass\n"
             "print('htcondor2' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": f"{STANDIN}:{ROOT}", "CONDOR_JOB_PROXY_QUEUE": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


# --- two hosts: the starter on an execute node, ssh on the access point ------------------------

EXEC_IP, SUBMIT_IP = "192.0.2.2", "192.0.2.1"
PORTS = (41000, 41009)
IP = shutil.which("ip") or "ip"   # by path: a job's environment has no PATH to find it with


@dataclass
class TwoHosts:
    execute: str       # network namespace names
    submit: str

    def on_execute(self, *argv: str) -> list[str]:
        return [IP, "netns", "exec", self.execute, *argv]

    def on_submit(self, *argv: str) -> list[str]:
        return [IP, "netns", "exec", self.submit, *argv]


@pytest.fixture(scope="module")
def two_hosts():
    """Two network namespaces joined by a veth pair (192.0.2.0/24, TEST-NET-1), torn down after."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("network namespaces need root and iproute2")
    tag = str(os.getpid())
    hosts = TwoHosts(f"cjp-exec-{tag}", f"cjp-submit-{tag}")
    run = lambda *argv: subprocess.run(argv, check=True, capture_output=True)  # noqa: E731
    try:
        run("ip", "netns", "add", hosts.execute)
        run("ip", "netns", "add", hosts.submit)
        run("ip", "link", "add", f"cjpx{tag}", "netns", hosts.execute, "type", "veth",
            "peer", "name", f"cjps{tag}", "netns", hosts.submit)
        for ns, link, ip in ((hosts.execute, f"cjpx{tag}", EXEC_IP),
                             (hosts.submit, f"cjps{tag}", SUBMIT_IP)):
            run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", link)
            run("ip", "-n", ns, "link", "set", link, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        yield hosts
    finally:
        for ns in (hosts.execute, hosts.submit):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@dataclass
class PoolJob:
    id: str
    host: str
    process: subprocess.Popen
    scratch: Path


@pytest.fixture
def pool_job(pool: Pool, two_hosts: TwoHosts):
    """Job 7.0, submitted with the snippet's attributes, running under the starter on the
    execute host, the way HTCondor's starter runs a job: job ad, machine ad, scratch dir."""
    scratch = pool.root / "execute" / "dir_4242"
    ad = pool.add_job(7, Cmd="/usr/local/bin/condor-job-starter",
                      Arguments="run -- sleep 600", WantIOProxy=True,
                      CondorJobProxyOwnerKey=pool.public_key())
    admin = pool.root / "admin"
    admin.mkdir(mode=0o755)
    env = job_environment(scratch, ad, pool.file, "ap.test",
                          f"<{EXEC_IP}:9618?addrs={EXEC_IP}-9618&alias=exec.test>",
                          own={"PYTHONPATH": pool.env["PYTHONPATH"], "MARKER": "on-the-execute-node"})
    stderr_file = pool.root / "starter.err"
    with open(stderr_file, "wb") as err:
        process = subprocess.Popen(two_hosts.on_execute(
            sys.executable, "-m", "condor_job_proxy.starter", "run", "--port-range", f"{PORTS[0]}-{PORTS[1]}",
            "--super-users-keys", str(admin / "super_users_keys"), "--", "sleep", "600"),
            cwd=scratch, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        job_id = wait_for_job_line(process, stderr_file)
        yield PoolJob(job_id, f"job-{job_id}", process, scratch)
    finally:
        process.terminate()
        process.wait(15)


def _ssh(pool: Pool, hosts: TwoHosts, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(hosts.on_submit("ssh", "-F", str(pool.ssh_config), "-o", "BatchMode=yes",
                                          *args), env=pool.env, capture_output=True, timeout=60)


def _new_key(pool: Pool, name: str) -> Path:
    path = pool.root / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
                   check=True)
    return path


def _ssh_with_key(pool: Pool, hosts: TwoHosts, key: Path, host: str,
                  *command: str) -> subprocess.CompletedProcess:
    """ssh as someone holding ``key`` (an admin, a stranger): their own identity, same proxy."""
    known = pool.root / f"known_hosts.{key.name}"
    proxy = (f"{sys.executable} -m condor_job_proxy connect --identity {key} "
             f"--known-hosts {known} %n %r")
    return subprocess.run(hosts.on_submit(
        "ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", f"ProxyCommand={proxy}",
        "-o", "ProxyUseFdpass=yes", "-o", f"UserKnownHostsFile={known}", "-o",
        "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-i", str(key),
        "-l", _me(), host, *command), env=pool.env, capture_output=True, timeout=60)


def test_starter_publishes_its_execute_address_through_chirp(pool: Pool, pool_job: PoolJob) -> None:
    ad = pool.job_ad(7)
    host, port = ad["CondorJobProxyAddress"].rsplit(":", 1)
    assert host == EXEC_IP and PORTS[0] <= int(port) <= PORTS[1]
    assert ad["CondorJobProxyKey"].startswith("ssh-ed25519 ")
    assert ad["CondorJobProxyUser"] == _me()
    assert "CondorJobProxyNoTerminal" not in ad   # root's sessions always get a terminal


def test_ssh_from_access_point_into_job_on_execute_node(pool: Pool, two_hosts: TwoHosts,
                                                        pool_job: PoolJob) -> None:
    result = _ssh(pool, two_hosts, pool_job.host, 'echo "$MARKER"; pwd; echo "$SSH_CONNECTION"')
    assert result.returncode == 0, result.stderr
    marker, cwd, connection = result.stdout.decode().splitlines()
    assert marker == "on-the-execute-node"
    assert cwd == str(pool_job.scratch)
    assert connection.split()[0] == SUBMIT_IP   # real TCP from the access point's address


def test_scp_from_job_on_execute_node(pool: Pool, two_hosts: TwoHosts, pool_job: PoolJob) -> None:
    (pool_job.scratch / "out.dat").write_bytes(os.urandom(200_000))
    target = pool.root / "copied.dat"
    result = subprocess.run(two_hosts.on_submit(
        "scp", "-F", str(pool.ssh_config), "-o", "BatchMode=yes", f"{pool_job.host}:out.dat",
        str(target)), env=pool.env, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == (pool_job.scratch / "out.dat").read_bytes()


def test_starter_is_reachable_only_on_the_execute_address(pool: Pool, two_hosts: TwoHosts,
                                                          pool_job: PoolJob) -> None:
    port = pool.job_ad(7)["CondorJobProxyAddress"].rsplit(":", 1)[1]
    listening = subprocess.run(two_hosts.on_execute("ss", "-Hltn"), capture_output=True,
                               text=True, check=True).stdout.split("\n")
    assert [line.split()[3] for line in listening if line.strip()] == [f"{EXEC_IP}:{port}"]
    probe = ("import socket,sys\ntry:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])),"
             " timeout=5).close(); print('open')\nexcept OSError as e:\n    print(type(e).__name__)")
    reach = lambda side, ip: subprocess.run(  # noqa: E731
        side(sys.executable, "-c", probe, ip, port), capture_output=True, text=True).stdout.strip()
    assert reach(two_hosts.on_submit, EXEC_IP) == "open"
    assert reach(two_hosts.on_execute, "127.0.0.1") == "ConnectionRefusedError"
    assert reach(two_hosts.on_submit, "127.0.0.1") == "ConnectionRefusedError"
    assert reach(lambda *argv: list(argv), EXEC_IP) != "open"   # not from outside the pair


def test_stranger_is_refused_by_the_job(pool: Pool, two_hosts: TwoHosts,
                                        pool_job: PoolJob) -> None:
    stranger = _new_key(pool, "stranger")
    result = _ssh_with_key(pool, two_hosts, stranger, pool_job.host, "true")
    assert result.returncode == 255
    assert "you are not the job's owner" in result.stderr.decode()


def test_queue_super_user_gets_into_any_job(pool: Pool, two_hosts: TwoHosts,
                                            pool_job: PoolJob) -> None:
    admin_key = _new_key(pool, "admin_key")
    (pool.root / "admin" / "super_users_keys").write_text(
        "# queue super users\n" + (pool.root / "admin_key.pub").read_text())
    result = _ssh_with_key(pool, two_hosts, admin_key, pool_job.host, "pwd")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == str(pool_job.scratch)


def test_super_users_file_others_can_write_is_ignored(pool: Pool, two_hosts: TwoHosts,
                                                      pool_job: PoolJob) -> None:
    admin_key = _new_key(pool, "admin_key")
    keys_file = pool.root / "admin" / "super_users_keys"
    keys_file.write_text((pool.root / "admin_key.pub").read_text())
    keys_file.chmod(0o666)
    result = _ssh_with_key(pool, two_hosts, admin_key, pool_job.host, "true")
    assert result.returncode == 255
    assert "you are not the job's owner" in result.stderr.decode()
    assert wait_until(lambda: "writable by group or others" in (pool.root / "starter.err").read_text())


# --- a real pool, when there is one --------------------------------------------------------------

def _real_pool_answers() -> bool:
    if not shutil.which("condor_q"):
        return False
    try:
        return subprocess.run(["condor_q", "-totals"], capture_output=True, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.mark.skipif(not _real_pool_answers(), reason="no HTCondor pool answers condor_q here")
def test_contract_with_a_real_pool() -> None:
    """Our queries against the site's real schedd (real bindings, no stand-in on the path):
    the projection is accepted, our running jobs list, and each resolves or fails in one line."""
    probe = """
import htcondor2
from condor_job_proxy.proxycmd.errors import ProxyError
from condor_job_proxy.proxycmd.resolvers.htcondor import PROJECTION, Resolver as HTCondorResolver
assert htcondor2.Schedd().query(constraint="False", projection=PROJECTION) == []
resolver = HTCondorResolver()
for job in resolver.list_jobs():
    try:
        print(job.job, resolver.resolve(job.job).address)
    except ProxyError as err:
        print(job.job, "refused:", err)
try:
    resolver.resolve(__import__("condor_job_proxy.common.jobid").common.jobid.JobId(2**31 - 1, 0))
except ProxyError as err:
    assert "is not in the queue" in str(err), err
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.endswith("ok\n"), result.stderr


@dataclass
class RealUser:
    """A user of the real pool set up in a test directory, with our starter "installed" there
    (a personal pool's execute side shares this machine's files)."""
    root: Path
    env: dict[str, str]
    starter: Path

    def proxy(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "condor_job_proxy", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def wait_for_history(self, cluster: int, timeout: float = 600) -> dict:
        """The job's ad once it has left the queue (condor_history), as a dict of strings."""
        found: dict = {}

        def left() -> bool:
            out = subprocess.run(["condor_history", "-limit", "1", "-long", f"{cluster}.0"],
                                 capture_output=True, text=True, timeout=60).stdout
            found.update(line.split(" = ", 1) for line in out.splitlines() if " = " in line)
            return bool(found)
        assert wait_until(left, timeout=timeout, interval=2), f"job {cluster}.0 never ended"
        return found


@pytest.fixture
def real_user(tmp_path: Path) -> RealUser:
    tmp_path.chmod(0o755)   # the pool runs the job as this user, maybe from another cwd
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("CONDOR_JOB_PROXY_QUEUE", None)
    starter = tmp_path / "condor-job-starter"
    starter.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m condor_job_proxy.starter \"$@\"\n")
    starter.chmod(0o755)
    env["PATH"] = f"{tmp_path}:{env.get('PATH', '')}"   # where submit-snippet finds the starter
    user = RealUser(tmp_path, env, starter)
    (tmp_path / "config" / "condor-job-proxy").mkdir(parents=True)
    (tmp_path / "config" / "condor-job-proxy" / "config.toml").write_text(
        f'resolver = "htcondor"\ncontrol_master = false\n[interactive]\nstarter = "{starter}"\n'
        'command = ["/nonexistent/interactive-program"]\n')
    assert user.proxy("setup", "--yes", "--ssh-config", str(tmp_path / "ssh_config")).returncode == 0
    yield user
    user.proxy("daemon", "--stop")


@pytest.mark.skipif(not _real_pool_answers(), reason="no HTCondor pool answers condor_q here")
@pytest.mark.parametrize("chirp", ["found", "failing"])
def test_job_under_our_starter_runs_on_a_real_pool(real_user: RealUser, chirp: str) -> None:
    """A job made with `submit-snippet --into` runs its program to its exit status on a real
    pool; chirp is found where HTCondor put it (a job has no PATH), or, when it fails, the
    program still runs and the starter says in one line why ssh is refused.

    Anyone with a pool can run this (and the test below): condor_q, condor_submit and
    condor_history on PATH, the htcondor2 bindings importable, jobs of this user allowed to run
    on this machine's execute side (a personal pool). A personal pool from HTCondor's tarball,
    without root, as the issue's (25.14, four static slots):

        PREFIX=$HOME/condor; mkdir -p $PREFIX
        curl -fsSL <the x86_64 tarball from https://htcondor.org/downloads/> | tar -xz -C $PREFIX --strip-components=1
        $PREFIX/bin/make-personal-from-tarball     # writes $PREFIX/condor.sh and local config
        echo 'NUM_SLOTS = 4' >> $PREFIX/local/condor_config.local
        . $PREFIX/condor.sh && condor_master       # then wait until condor_status shows 4 slots
        pip install "htcondor==25.14.*"             # the bindings matching the daemons
        CJP_TEST_ACCOUNT_SUFFIX=-x python -m pytest tests/test_htcondor_pool.py -k real_pool
    """
    submit_file = real_user.root / "job.sub"
    submit_file.write_text(
        f"initialdir = {real_user.root}\nexecutable = /bin/sh\n"
        "arguments = \"-c 'echo ran > marker; exit 3'\"\nerror = job.err\n"
        "should_transfer_files = NO\n"
        + ('environment = "CONDOR_JOB_PROXY_CHIRP=/nonexistent/condor_chirp"\n'
           if chirp == "failing" else "") + "queue\n")
    assert real_user.proxy("submit-snippet", "--into", str(submit_file)).returncode == 0
    submitted = subprocess.run(["condor_submit", str(submit_file)], env=real_user.env,
                               capture_output=True, text=True, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    cluster = int(submitted.stdout.strip().rsplit(" ", 1)[1].rstrip("."))
    ad = real_user.wait_for_history(cluster)
    err = (real_user.root / "job.err").read_text()
    assert ad.get("ExitCode") == "3", (ad.get("ExitCode"), err)
    assert (real_user.root / "marker").read_text() == "ran\n"
    refused = [line for line in err.splitlines() if "without ssh access" in line]
    if chirp == "found":
        assert refused == [] and "CondorJobProxyAddress" in ad, err
    else:
        assert len(refused) == 1 and "/nonexistent/condor_chirp" in refused[0], err


@pytest.mark.skipif(not _real_pool_answers(), reason="no HTCondor pool answers condor_q here")
def test_condor_interactive_job_that_ends_is_reported_on_a_real_pool(real_user: RealUser) -> None:
    """`ssh condor-interactive` whose job's program cannot run: the job completes with exit
    status 1 while the client waits, which says so, with where the job's stderr is (the pool
    recipe: the test above)."""
    result = subprocess.run(["ssh", "-F", str(real_user.root / "ssh_config"), "-o",
                             "BatchMode=yes", "condor-interactive", "true"],
                            env={**real_user.env, "CONDOR_JOB_PROXY_WAIT": "600"},
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 255
    line = result.stderr.strip().splitlines()[-1]
    assert " has ended: exit status 1; its stderr is in " in line, result.stderr
    err_file = Path(line.split(" its stderr is in ", 1)[1].split(" (after waiting", 1)[0])
    assert "cannot run /nonexistent/interactive-program" in err_file.read_text()


# --- the starter reading what HTCondor gives a job ------------------------------------------------

def test_starter_reads_literals_from_the_job_ad_file() -> None:
    from condor_job_proxy.common import jobad
    ad = jobad.parse('ClusterId = 32\nProcId = 0\nOwner = "alice"\nWantIOProxy = true\n'
                     'CondorJobProxyOwnerKey = "ssh-ed25519 AAAA one\\nssh-ed25519 BBBB two"\n'
                     'Note = "say \\"hi\\" \\\\o/"\nRequestMemory = ifThenElse(MemoryUsage > 1, 2, 3)\n'
                     'DiskUsage_RAW = 1.5\n')
    assert ad["ClusterId"] == 32 and ad["ProcId"] == 0 and ad["WantIOProxy"] is True
    assert jobad.lookup(ad, "owner") == "alice"
    assert ad["CondorJobProxyOwnerKey"].splitlines() == ["ssh-ed25519 AAAA one", "ssh-ed25519 BBBB two"]
    assert ad["Note"] == 'say "hi" \\o/' and jobad.parse(f"N = {jobad.quote(ad['Note'])}")["N"] == ad["Note"]
    assert "RequestMemory" not in ad and ad["DiskUsage_RAW"] == 1.5


def test_job_without_want_io_proxy_still_runs_without_ssh_access(pool: Pool) -> None:
    scratch = pool.root / "scratch"
    env = job_environment(scratch, {"ClusterId": 40, "ProcId": 0, "Owner": "me"}, pool.file,
                          "ap.test", "<127.0.0.1:9618>", own={"PYTHONPATH": pool.env["PYTHONPATH"]})
    result = subprocess.run([sys.executable, "-m", "condor_job_proxy.starter", "run", "--", "sh", "-c", "exit 3"],
                            cwd=scratch, env=env, capture_output=True, timeout=60)
    assert result.returncode == 3
    assert "job 40.0 runs without ssh access: condor_chirp set_job_attr" in result.stderr.decode()


def test_wrapper_outside_a_job_says_what_is_missing(pool: Pool) -> None:
    result = subprocess.run([sys.executable, "-m", "condor_job_proxy.starter", "run", "--htcondor", "--", "true"],
                            env=pool.env, capture_output=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.decode().strip() == ("condor-job-starter: no job ad: $_CONDOR_JOB_AD is "
                                              "not set (is this running as an HTCondor job?)")


PARALLEL_SUBMIT = """universe = parallel
machine_count = 2
executable = /bin/sleep
arguments = 600
should_transfer_files = NO
queue
"""


def _real_proxy(tmp_path: Path):
    """condor-job-proxy set up for the real pool, in a throwaway config and state."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("CONDOR_JOB_PROXY_QUEUE", None)
    (tmp_path / "config" / "condor-job-proxy").mkdir(parents=True)
    (tmp_path / "config" / "condor-job-proxy" / "config.toml").write_text('resolver = "htcondor"\n')
    proxy = lambda *a: subprocess.run([sys.executable, "-m", "condor_job_proxy", *a], env=env,  # noqa: E731
                                      capture_output=True, text=True, timeout=120)
    assert proxy("setup", "--yes", "--ssh-config", str(tmp_path / "ssh_config")).returncode == 0
    return env, proxy


@pytest.mark.skipif(not _real_pool_answers(), reason="no HTCondor pool answers condor_q here")
def test_native_contract_with_a_real_pool(tmp_path: Path) -> None:
    """One of my running jobs that runs no starter of ours, reached through the real
    condor_ssh_to_job and our grabber with the generated config (skipped without such a job)."""
    env, proxy = _real_proxy(tmp_path)
    jobs = json.loads(proxy("jobs", "--json").stdout)
    native = [j["job"] for j in jobs if "transport: htcondor-native" in proxy("doctor", j["job"]).stdout]
    if not native:
        pytest.skip("none of my running jobs goes through the pool's own ssh-to-job")
    result = subprocess.run(["ssh", "-F", str(tmp_path / "ssh_config"), "-o", "BatchMode=yes",
                             f"job-{native[0]}", "echo", "$_CONDOR_JOB_PIDS"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip(), result.stderr


@pytest.mark.skipif(not _real_pool_answers(), reason="no HTCondor pool answers condor_q here")
def test_parallel_job_nodes_on_a_real_pool(tmp_path: Path) -> None:
    """A two-node parallel job on a real pool: its ad has the shape the stand-in models, each
    node is listed and reached by ``ssh job-N.0.K`` (the pool's own ssh-to-job), and
    HTCondor's tool words the missing node as the stand-in does.

    The pool needs a dedicated scheduler (skipped if the job does not start in 3 minutes). For a
    personal pool (one machine, ``condor_master`` with ``use ROLE: Personal`` and at least two
    slots, e.g. ``NUM_CPUS = 2``), add on the execute side::

        DedicatedScheduler = "DedicatedScheduler@<the schedd's Name, e.g. condor_status -schedd>"
        STARTD_ATTRS = $(STARTD_ATTRS) DedicatedScheduler
        RANK = Scheduler =?= $(DedicatedScheduler)

    then ``condor_reconfig`` (``condor_restart -startd`` if the slots do not advertise it).
    """
    (tmp_path / "job.sub").write_text(PARALLEL_SUBMIT)
    submitted = subprocess.run(["condor_submit", "-terse", str(tmp_path / "job.sub")],
                               capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    cluster = submitted.stdout.split(".")[0].strip()
    try:
        deadline = time.monotonic() + 180
        ad = {}
        while time.monotonic() < deadline and ad.get("JobStatus") != 2:
            time.sleep(3)
            query = subprocess.run(["condor_q", "-json", f"{cluster}.0"], capture_output=True,
                                   text=True, timeout=60)
            ad = (json.loads(query.stdout or "[]") or [{}])[0]
        if ad.get("JobStatus") != 2:
            pytest.skip("the parallel job did not start: no dedicated scheduler in this pool?")
        model = parallel_job_ad(int(cluster), ad["Owner"], ad["RemoteHosts"].split(","))
        for name in ("JobUniverse", "MinHosts", "MaxHosts", "CurrentHosts", "RemoteHosts",
                     "AllRemoteHosts"):
            assert ad.get(name) == model[name], (name, ad.get(name), model[name])
        env, proxy = _real_proxy(tmp_path)
        names = proxy("jobs", "--names").stdout.split()
        assert f"job-{cluster}.0.0" in names and f"job-{cluster}.0.1" in names
        assert f"job-{cluster}.0" not in names
        for node in ("0", "1"):
            result = subprocess.run(["ssh", "-F", str(tmp_path / "ssh_config"), "-o",
                                     "BatchMode=yes", f"job-{cluster}.0.{node}",
                                     "echo $_CONDOR_PROCNO"], env=env, capture_output=True,
                                    text=True, timeout=120)
            assert (result.returncode, result.stdout) == (0, f"{node}\n"), result.stderr
        whole = subprocess.run(["condor_ssh_to_job", f"{cluster}.0", "true"],
                               capture_output=True, text=True, timeout=120)
        assert whole.returncode == 1 and whole.stderr.splitlines()[0] == (
            f"This is a parallel job.  Please specify job {cluster}.0.X where X is an integer "
            "from 0 to 1."), whole.stderr
    finally:
        subprocess.run(["condor_rm", cluster], capture_output=True, timeout=60)


def test_condor_ssh_to_job_remove_on_interrupt_removes_a_schedd_job(pool: Pool) -> None:
    """Ctrl-C while `condor_ssh_to_job -auto-retry -remove-on-interrupt` waits: condor_rm."""
    pool.add_job(12, JobStatus=1, CondorJobProxyOwnerKey=pool.public_key())   # idle: it waits
    waiting = subprocess.Popen(
        [sys.executable, "-m", "condor_job_proxy.ssh_to_job", "-auto-retry",
         "-remove-on-interrupt", "-name", "ap.test", "12", "true"],
        env={**pool.env, "CONDOR_SSH_TO_JOB_RETRY_SECONDS": "0.2"}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert waiting.stderr.readline() == b"Waiting for job to start...\n"
    waiting.send_signal(signal.SIGINT)
    assert waiting.wait(30) == 1
    job = next(ad for ad in json.loads(pool.file.read_text())["schedds"]["ap.test"]["jobs"]
               if ad["ClusterId"] == 12)
    assert job["JobStatus"] == 3
    assert "-remove-on-interrupt" in job["RemoveReason"]
