"""Another user's pool job tries to steer my proxy; my own job's ad tries to break my terminal.

Two real accounts: cjp-victim (me: a plain user, set up for the pool) and cjp-mallory (another
user of the same access point, who owns jobs in the same schedd and runs servers of her own).
The schedd and HTCondor's tool are the stand-ins (tests/htcondor_standin), with the pool's
configuration (QUEUE_SUPER_USERS) in the pool file; everything of ours is the real code, run
as those accounts from the test venv. What HTCondor does, the proxy must do: a job's ad is its
owner's word, believed only for the owner's own jobs or a queue super user; an ad never makes
a job an EC2 job outside the grid universe; files an ad names are read only for my own jobs;
no file's content and no control character from an ad reaches my terminal.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from accounts import VENV, Account, account, ensure_venv
from conftest import wait_for_job_line, wait_until
from htcondor_standin.htcondor2._pool import ec2_job_ad
from test_via_access_point import via  # noqa: F401 - its accounts, job and access point

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="test accounts need root")

STANDIN = Path(__file__).resolve().parent / "htcondor_standin"
ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[1;31m\r\x9b1A"
PRIVATE_KEY_MARK = "BEGIN OPENSSH PRIVATE KEY"
AWS_KEY_ID = "AKIAVICTIMKEY0000042"
LISTENER = """
import http.server, sys
log = sys.argv[2]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        with open(log, "a") as out:
            out.write(f"{self.path} {self.headers.get('Authorization')}\\n")
        self.send_response(400)
        self.end_headers()
    do_GET = do_POST
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(str(server.server_address[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
"""
# An access point that answers every connect with an error frame, and lists one job, with
# terminal escapes in every text field.
HOSTILE_AP = """
import json, struct, sys
escapes = %r
if sys.argv[1:3] == ["jobs", "--json"]:
    print(json.dumps([{"job": "77.0", "owner": "ap" + escapes + "user", "user": "someone",
                       "state": "running", "start_time": 0, "address": "192.0.2.9:9" + escapes,
                       "command": ["/bin/sleep" + escapes, "600"]}]))
else:
    body = json.dumps({"ok": False, "error": "job 77.0 is held: " + escapes + "disk full"})
    sys.stdout.buffer.write(b"CJPV" + bytes([1]) + struct.pack(">I", len(body)) + body.encode())
""" % ESCAPES


def _write_as(who: Account, path: Path, text: str, mode: str = "600") -> None:
    result = who.run("sh", "-c", f"umask 077; mkdir -p '{path.parent}'; cat > '{path}'; "
                     f"chmod {mode} '{path}'", input=text.encode())
    assert result.returncode == 0, result.stderr


def _boto3_for_accounts() -> Path:
    """boto3 and what it imports, readable by every account (the test venv has no boto3; a
    user whose proxy reaches EC2 jobs has it). Pure Python, copied once per botocore version."""
    import botocore
    site = Path(botocore.__file__).parent.parent
    target = VENV.parent / f"boto3-for-accounts-{botocore.__version__}"
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in ("boto3", "botocore", "jmespath", "dateutil", "s3transfer", "urllib3"):
            shutil.copytree(site / name, target / name)
        shutil.copy(site / "six.py", target / "six.py")
        subprocess.run(["chmod", "-R", "a+rX", str(target)], check=True)
        (target / ".complete").write_text("")
    return target


class Pool:
    """The stand-in pool file (root plays the schedd) and the victim's environment."""

    def __init__(self, root: Path) -> None:
        self.file = root / "pool.json"
        self.state = {"collector": "cm.test", "local_schedd": "ap.test", "config": {},
                      "schedds": {"ap.test": {"address": "<192.0.2.1:9618>", "jobs": []}}}
        self.save()

    def save(self) -> None:
        self.file.write_text(json.dumps(self.state))
        self.file.chmod(0o644)

    def add_job(self, cluster: int, owner: str, **attrs) -> dict:
        ad = {"ClusterId": cluster, "ProcId": 0, "Owner": owner, "JobStatus": 2,
              "JobUniverse": 5, "Cmd": "/usr/bin/sleep", "Arguments": "600",
              "JobCurrentStartDate": 1700000000, **attrs}
        jobs = self.state["schedds"]["ap.test"]["jobs"]
        jobs[:] = [job for job in jobs if job["ClusterId"] != cluster] + [ad]
        self.save()
        return ad

    def super_users(self, names: str | None) -> None:
        """QUEUE_SUPER_USERS in the pool's configuration (None: HTCondor's default)."""
        self.state["config"].pop("QUEUE_SUPER_USERS", None)
        if names is not None:
            self.state["config"]["QUEUE_SUPER_USERS"] = names
        self.save()


@pytest.fixture(scope="module")
def pool():
    """cjp-victim set up for the pool; cjp-mallory with a starter of hers and a web server."""
    ensure_venv()
    victim, mallory = account("victim"), account("mallory")
    root = Path(tempfile.mkdtemp(prefix="cjp-hostile-pool-"))
    os.chmod(root, 0o755)
    pool = Pool(root)
    env = {"HTCONDOR_STANDIN_POOL": str(pool.file),
           "PYTHONPATH": f"{STANDIN}:{_boto3_for_accounts()}",
           "PATH": f"{STANDIN / 'bin'}:{VENV}/bin:/usr/bin:/bin:/usr/sbin:/sbin",
           "AWS_DEFAULT_REGION": "us-east-1"}
    _write_as(victim, victim.home / ".config" / "condor-job-proxy" / "config.toml",
              'resolver = "htcondor"\nconnect_daemon = false\ncontrol_master = false\n')
    result = victim.run("condor-job-proxy", "setup", "--yes", env=env)
    assert result.returncode == 0, result.stderr
    # Files of mine an ad could name: my AWS key id for my own EC2 jobs, and an ssh key.
    _write_as(victim, victim.home / "aws" / "access-key", AWS_KEY_ID + "\n")
    assert victim.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                      str(victim.home / ".ssh" / "id_ed25519")).returncode == 0
    mine = {"private_key": victim.home / ".ssh" / "id_ed25519",
            "access_key": victim.home / "aws" / "access-key",
            "public": victim.run("condor-job-proxy", "pubkey", env=env).stdout.decode().strip()}
    den = root / "mallory"
    den.mkdir()
    shutil.chown(den, mallory.name)
    processes = [_mallorys_starter(mallory, den, mine["public"], env),
                 mallory.popen(f"{VENV}/bin/python", "-c", LISTENER, str(den / "port"),
                               str(den / "requests"), stdin=subprocess.DEVNULL)]
    try:
        assert wait_until(lambda: (den / "port").exists(), timeout=20)
        published = {name: value for name, value in json.loads(
            (den / "chirp-pool.json").read_text())["schedds"]["ap.test"]["jobs"][0].items()
            if name.startswith("CondorJobProxy")}
        yield {"victim": victim, "mallory": mallory, "env": env, "pool": pool, "den": den,
               "mine": mine, "published": published,
               "url": f"http://127.0.0.1:{(den / 'port').read_text()}/"}
    finally:
        for process in processes:
            process.terminate()
            process.wait(15)
        shutil.rmtree(root, ignore_errors=True)


def _mallorys_starter(mallory: Account, den: Path, victims_key: str, env: dict) -> subprocess.Popen:
    """Our own starter as mallory's job 66.0, the way HTCondor runs it (job ad, machine ad,
    chirp), her submit file naming the victim's public key as the owner's (public keys are
    public: the victim's own job ads carry it for anyone who runs condor_q). Its chirp
    updates land in a copy of the pool file of hers; the tests copy them into the schedd's."""
    scratch = den / "job"
    scratch.mkdir()
    (scratch / ".job.ad").write_text(
        f'ClusterId = 66\nProcId = 0\nOwner = "{mallory.name}"\nWantIOProxy = true\n'
        f'CondorJobProxyOwnerKey = "{victims_key}"\n')
    (scratch / ".machine.ad").write_text('MyAddress = "<127.0.0.1:9618?addrs=127.0.0.1-9618>"\n'
                                         'Machine = "exec.test"\n')
    (den / "chirp-pool.json").write_text(json.dumps({
        "collector": "cm.test", "local_schedd": "ap.test",
        "schedds": {"ap.test": {"address": "<192.0.2.1:9618>",
                                "jobs": [{"ClusterId": 66, "ProcId": 0}]}}}))
    (scratch / ".chirp.config").write_text(json.dumps(
        {"pool": str(den / "chirp-pool.json"), "schedd": "ap.test", "job": "66.0"}))
    for path in (scratch, *scratch.iterdir(), den / "chirp-pool.json"):
        shutil.chown(path, mallory.name)
    err_file = den / "starter.err"
    with open(err_file, "wb") as err:
        starter = mallory.popen(
            "condor-job-starter", "run", "--super-users-keys", str(den / "none"), "--",
            "sleep", "900", env={**env, "_CONDOR_JOB_AD": str(scratch / ".job.ad"),
                                 "_CONDOR_MACHINE_AD": str(scratch / ".machine.ad"),
                                 "_CONDOR_SCRATCH_DIR": str(scratch), "TMPDIR": str(scratch),
                                 "_CONDOR_BIN": str(STANDIN / "bin")},   # chirp beside it
            cwd=scratch, stderr=err, stdin=subprocess.DEVNULL)
    wait_for_job_line(starter, err_file, timeout=30)
    return starter


def _one_line(result: subprocess.CompletedProcess, status: int = 255) -> str:
    lines = result.stderr.decode(errors="replace").splitlines()
    assert result.returncode == status and len(lines) == 1, result
    return lines[0]


def _ssh_line(result: subprocess.CompletedProcess) -> str:
    """The proxy's one line among ssh's own (its "proxy dialer did not pass back ...")."""
    lines = [line for line in result.stderr.decode(errors="replace").splitlines()
             if line.startswith("condor-job-proxy:") or "Traceback" in line]
    assert result.returncode == 255 and len(lines) == 1, result
    return lines[0]


def _mallorys_sshds(pool: dict) -> list[str]:
    return subprocess.run(["pgrep", "-u", pool["mallory"].name, "-x", "sshd"], capture_output=True,
                          text=True).stdout.split()


def _requests_to_mallory(pool: dict) -> str:
    path = pool["den"] / "requests"
    return path.read_text() if path.exists() else ""


# --- another user's job ------------------------------------------------------------------------

def test_another_users_job_cannot_point_my_ssh_at_its_owners_server(pool) -> None:
    """Mallory's job publishes her own starter's address, key and user: my `ssh` and my
    `condor_ssh_to_job` are refused before anything connects, in HTCondor's words."""
    victim, mallory = pool["victim"], pool["mallory"]
    pool["pool"].super_users(None)
    pool["pool"].add_job(66, mallory.name, CondorJobProxyOwnerKey=pool["mine"]["public"],
                         **pool["published"])
    stolen = pool["den"] / "job" / "stolen"
    refusal = (f"{victim.name} is not authorized for access to the starter for job 66.0")
    result = victim.run(f"{VENV}/bin/condor_ssh_to_job", "66", f"cat > {stolen}; whoami",
                        env=pool["env"], input=b"my secret input\n")
    assert _one_line(result, 1) == refusal
    result = victim.run("ssh", "-o", "BatchMode=yes", "-l", mallory.name, "job-66.0",
                        f"cat > {stolen}; whoami", env=pool["env"], input=b"my secret input\n")
    line = _ssh_line(result)
    assert line.startswith(f"condor-job-proxy: {refusal}: it is {mallory.name}'s job"), line
    assert mallory.name.encode() not in result.stdout
    assert not stolen.exists() and not _mallorys_sshds(pool)


def test_only_the_pools_queue_super_users_enter_another_users_job(pool) -> None:
    """HTCondor's own rule, the schedd's: the owner, or a QUEUE_SUPER_USERS name or %group
    member. The refusal comes from us, before HTCondor's tool runs, in HTCondor's words."""
    victim, mallory = pool["victim"], pool["mallory"]
    iwd = pool["den"] / "job"
    group = f"cjp-supers{os.environ.get('CJP_TEST_ACCOUNT_SUFFIX', '')}"
    subprocess.run(["groupadd", "-f", group], check=True)
    subprocess.run(["gpasswd", "-a", victim.name, group], check=True, capture_output=True)
    sleeper = subprocess.Popen(["sleep", "600"], user=mallory.name)   # her job's process
    try:
        pool["pool"].add_job(65, mallory.name, Iwd=str(iwd), StandinJobPid=sleeper.pid)
        pool["pool"].super_users("root, condor")
        line = _one_line(victim.run("condor-job-proxy", "connect", "job-65.0", victim.name,
                                    env=pool["env"]))
        assert line == (f"condor-job-proxy: {victim.name} is not authorized for access to the "
                        f"starter for job 65.0: it is {mallory.name}'s job, and {victim.name} is "
                        "not a queue super user of the pool")
        for super_users in (f"root, condor, {victim.name}", f"root, condor, %{group}"):
            pool["pool"].super_users(super_users)
            result = victim.run(f"{VENV}/bin/condor_ssh_to_job", "65", "pwd", env=pool["env"])
            assert result.returncode == 0, result.stderr
            assert result.stdout.decode().strip() == str(iwd)
    finally:
        pool["pool"].super_users(None)
        sleeper.kill()
        sleeper.wait()


def test_a_job_dressed_as_an_ec2_job_never_reads_my_files_or_calls_its_url(pool) -> None:
    """A vanilla job of mallory's with +GridResource and EC2 attributes naming my key files:
    refused for me; even as a queue super user it is no EC2 job, so nothing of mine is read."""
    victim, mallory, mine = pool["victim"], pool["mallory"], pool["mine"]
    pool["pool"].add_job(67, mallory.name, Iwd=str(pool["den"] / "job"),
                         GridResource=f"ec2 {pool['url']}", EC2InstanceName="i-0a1b2c3d4e5f",
                         EC2AmiID="ami-1", EC2KeyPairFile=str(mine["private_key"]),
                         EC2AccessKeyId=str(mine["private_key"]),
                         EC2SecretAccessKey=str(mine["access_key"]))
    for super_users, status in ((None, 255), (f"root, condor, {victim.name}", 0)):
        pool["pool"].super_users(super_users)   # a super user gets HTCondor's ssh-to-job
        result = victim.run("ssh", "-o", "BatchMode=yes", "job-67.0", "pwd", env=pool["env"])
        output = (result.stdout + result.stderr).decode(errors="replace")
        assert result.returncode == status, output
        assert PRIVATE_KEY_MARK not in output and AWS_KEY_ID not in output, output
        assert "EC2" not in output, output
    pool["pool"].super_users(None)
    assert _requests_to_mallory(pool) == ""


def test_another_users_ec2_job_does_not_get_my_credentials_even_from_a_super_user(pool) -> None:
    """A real grid-universe EC2 job of mallory's whose ad names my credential files and her
    own service URL: I am refused; as a queue super user too (an ad's files are read only for
    my own jobs), and nothing reaches her URL or my terminal."""
    victim, mallory, mine = pool["victim"], pool["mallory"], pool["mine"]
    instance = {"InstanceId": "i-0a1b2c3d4e5f", "ImageId": "ami-1",
                "PublicDnsName": "ec2-192-0-2-7.compute-1.amazonaws.com", "KeyName": "k"}
    ad = ec2_job_ad(68, mallory.name, pool["url"], instance, str(mine["private_key"]),
                    (str(mine["access_key"]), str(mine["private_key"])), str(pool["den"]))
    pool["pool"].add_job(68, mallory.name, **ad)
    for super_users, refusal in ((None, "is not authorized for access to the starter"),
                                 (f"root, condor, {victim.name}",
                                  f"is an EC2 job of {mallory.name}")):
        pool["pool"].super_users(super_users)
        result = victim.run("condor-job-proxy", "connect", "job-68.0", "ec2-user", env=pool["env"])
        line = _one_line(result)
        assert refusal in line, line
        assert PRIVATE_KEY_MARK not in line and AWS_KEY_ID not in line
    pool["pool"].super_users(None)
    assert _requests_to_mallory(pool) == ""


# --- my own job's ad ---------------------------------------------------------------------------

def test_a_published_login_user_with_a_space_cannot_break_my_ssh_config(pool) -> None:
    """My job's code (not me) publishes a login user that is no login name: the include stays
    valid, every other ssh keeps working, and the job itself is one clear line."""
    victim = pool["victim"]
    pool["pool"].add_job(70, victim.name, **{**pool["published"],
                                             "CondorJobProxyUser": f"{victim.name} -oProxyCommand=sh"})
    pool["pool"].add_job(71, victim.name)
    result = victim.run("condor-job-proxy", "config", "refresh", env=pool["env"])
    assert result.returncode == 0, result.stderr
    include = victim.run("condor-job-proxy", "config", "show", env=pool["env"]).stdout.decode()
    assert "ProxyCommand=sh" not in include and "Host job-70.0" in include
    result = victim.run("ssh", "-G", "job-71.0", env=pool["env"])
    assert result.returncode == 0, result.stderr
    line = _ssh_line(victim.run("ssh", "-o", "BatchMode=yes", "job-70.0", "true", env=pool["env"]))
    assert "the login user its ad publishes" in line and "not a valid login name" in line, line


def test_text_from_my_jobs_ad_reaches_my_terminal_without_escape_sequences(pool) -> None:
    """Hold reasons, published addresses and commands are the job's (or its code's) text."""
    victim = pool["victim"]
    pool["pool"].add_job(72, victim.name, JobStatus=5, HoldReason=f"disk{ESCAPES} full\nsecond",
                         CondorJobProxyOwnerKey=pool["mine"]["public"])
    pool["pool"].add_job(73, victim.name, CondorJobProxyOwnerKey=pool["mine"]["public"],
                         CondorJobProxyKey=pool["published"]["CondorJobProxyKey"],
                         CondorJobProxyAddress=f"{ESCAPES}127.0.0.1:1")
    pool["pool"].add_job(74, victim.name, Cmd=f"/bin/sleep{ESCAPES}", Arguments=f"6{ESCAPES}00")
    outputs = [victim.run("ssh", "-o", "BatchMode=yes", "job-72.0", "true", env=pool["env"]),
               victim.run(f"{VENV}/bin/condor_ssh_to_job", "72", "true", env=pool["env"]),
               victim.run("ssh", "-o", "BatchMode=yes", "job-73.0", "true", env=pool["env"]),
               victim.run("condor-job-proxy", "jobs", env=pool["env"])]
    held, held_tool, address, listing = (result.stdout + result.stderr for result in outputs)
    assert b"disk" in held and b"disk" in held_tool and b"not an IP address" in address
    assert b"/bin/sleep" in listing
    for text in (held, held_tool, address, listing):   # (ssh's own lines end in CR LF)
        assert not any(byte in text for byte in b"\x1b\x07"), text
        assert "\x9b" not in text.decode(errors="replace"), text
    assert "\r" not in _ssh_line(outputs[0]) + _ssh_line(outputs[2])


# --- the access point's error frames and job list ----------------------------------------------

def test_an_access_points_error_and_job_list_reach_my_terminal_without_escapes(via) -> None:
    """The access point's error frame and job list are its text: shown without control
    characters (the laptop's terminal, and its ssh config's comments)."""
    script = via["root"] / "hostile_ap.py"
    script.write_text(HOSTILE_AP)
    script.chmod(0o644)
    command = f"{VENV}/bin/python {script}"
    laptop = via["laptop"]
    result = laptop.run("condor-job-proxy", "connect", "--via", "ap", "--via-command", command,
                        "job-77.0", input=b"")
    line = _one_line(result)
    assert "job 77.0 is held" in line and "disk full" in line and "\x1b" not in line
    result = laptop.run("condor-job-proxy", "setup", "--yes", "--via", "ap", "--via-command", command)
    assert result.returncode == 0, result.stderr
    shown = laptop.run("condor-job-proxy", "config", "show").stdout
    assert b"Host job-77.0" in shown
    assert not any(byte in shown for byte in b"\x1b\x07\r"), shown
