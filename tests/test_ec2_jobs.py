"""A user reaches an EC2 grid-universe job with plain OpenSSH, against a local EC2 endpoint.

moto's server is the EC2 API (boto3 speaks HTTP to it); a real sshd in its own network
namespace is the instance, reached by the public DNS name moto reports. The
job's ad comes from the stand-in schedd (tests/htcondor_standin), so `ssh job-40.0` runs the
product's whole path: the HTCondor resolver, the EC2 resolver (boto3), the direct transport.
"""
from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from accounts import account
from conftest import ROOT, Job, Workbench
from ec2lab import HERE, SERVICE_URL, Lab, start_lab
from proxycmd.resolvers import JobSummary
from sshconfig.include import IncludeSettings, render
from starter.jobid import JobId

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

JOB = JobId(40, 0)
HOST = JOB.host()
SAMPLES = HERE / "data" / "cloud-init"
STANDIN = HERE / "htcondor_standin"


@pytest.fixture(scope="module")
def lab():
    login = account("ec2")
    # useradd leaves the password locked ("!"), and sshd without PAM refuses locked accounts;
    # "*" allows no password either but lets key logins in, like an image's login account.
    subprocess.run(["usermod", "-p", "*", login.name], check=True)
    cloud = start_lab(login.name)
    (login.home / "results.txt").write_text("computed on the instance\n")
    yield cloud
    cloud.stop()


@dataclass
class Ec2Job:
    lab: Lab
    root: Path
    instance: dict
    key_file: Path
    ad: dict
    ssh_config: Path

    @property
    def env(self) -> dict[str, str]:
        return {"XDG_CONFIG_HOME": str(self.root / "config"),
                "XDG_STATE_HOME": str(self.root / "state"),
                "HTCONDOR_STANDIN_POOL": str(self.root / "pool.json"),
                # The stand-in bindings first: the schedd that serves job 40.0's ad.
                "PYTHONPATH": f"{STANDIN}:{ROOT}"}

    @property
    def known_hosts(self) -> Path:
        return self.root / "state" / "condor-job-proxy" / "known_hosts" / HOST

    def write_ad(self, **changes: object) -> None:
        """Put the job's ad in the stand-in schedd's queue, as HTCondor shows it running."""
        self.ad.update(changes)
        (self.root / "pool.json").write_text(json.dumps({
            "collector": "cm.test", "local_schedd": "ap.test",
            "schedds": {"ap.test": {"address": "<192.0.2.9:9618>", "jobs": [self.ad]}}}))

    def ssh(self, *args: str, tool: str = "ssh") -> subprocess.CompletedProcess:
        return self.lab.client(tool, "-F", str(self.ssh_config), "-o", "BatchMode=yes", *args,
                               env=self.env)


@pytest.fixture
def ec2_job(lab: Lab, tmp_path: Path) -> Ec2Job:
    """Job 40.0 running as an EC2 instance, its ad as the schedd would show it."""
    key_file = tmp_path / "job40.pem"
    instance = lab.launch(key_file)
    token = "7c8dc2a9-0ab3-4c3b-9a3b-40e0c0ffee00"
    ad = {"ClusterId": JOB.cluster, "ProcId": JOB.proc, "Owner": getpass.getuser(),
          "JobStatus": 2, "JobUniverse": 9, "Cmd": "EC2_instance", "GridResource": f"ec2 {SERVICE_URL}",
          "GridJobId": f"ec2 {SERVICE_URL} {token} {instance['InstanceId']}",
          "EC2InstanceName": instance["InstanceId"], "EC2KeyPairFile": str(key_file),
          "EC2RemoteVirtualMachineName": instance["PublicDnsName"], "Iwd": str(tmp_path)}
    config_dir = tmp_path / "config" / "condor-job-proxy"
    config_dir.mkdir(parents=True)
    (config_dir / "config.toml").write_text(
        f'resolver = "htcondor"\n[ec2.users_by_ami]\n"{instance["ImageId"]}" = "{lab.login}"\n')
    state = tmp_path / "state" / "condor-job-proxy"
    settings = IncludeSettings(
        proxy_command=[sys.executable, "-m", "condor_job_proxy"],
        identity=config_dir / "id_ed25519", known_hosts_dir=state / "known_hosts",
        identities_dir=state / "identities")
    running = JobSummary(JOB, owner="root", user=lab.login, state="running", start_time=0,
                         command=())   # what `config refresh` writes for a running job
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(render([running], settings))
    job = Ec2Job(lab, tmp_path, instance, key_file, ad, ssh_config)
    job.write_ad()
    return job


def cloud_init_console(keys: list[str]) -> str:
    """A real EC2 boot log (the sample), its host key block replaced by ``keys``."""
    sample = (SAMPLES / "ec2-ubuntu-14.04-cloud-init-0.7.5.txt").read_text()
    head, rest = sample.split("-----BEGIN SSH HOST KEY KEYS-----\n")
    _, tail = rest.split("-----END SSH HOST KEY KEYS-----\n")
    block = "".join(f"{key} root@ip-10-0-0-40\n" for key in keys)
    return f"{head}-----BEGIN SSH HOST KEY KEYS-----\n{block}-----END SSH HOST KEY KEYS-----\n{tail}"


def pinned_keys(job: Ec2Job) -> list[str]:
    return sorted(" ".join(line.split()[1:3]) for line in job.known_hosts.read_text().splitlines()
                  if line and not line.startswith("#"))


def test_ssh_into_ec2_job_with_host_keys_from_console(ec2_job: Ec2Job, lab: Lab) -> None:
    lab.set_console(ec2_job.instance["InstanceId"], cloud_init_console(lab.host_keys))
    result = ec2_job.ssh(HOST, "whoami; cat results.txt")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"{lab.login}\ncomputed on the instance\n"
    assert pinned_keys(ec2_job) == sorted(lab.host_keys)
    assert "first use" not in result.stderr.decode()
    link = ec2_job.root / "state" / "condor-job-proxy" / "identities" / HOST
    assert link.resolve() == ec2_job.key_file


def test_scp_download_from_ec2_job(ec2_job: Ec2Job, lab: Lab, tmp_path: Path) -> None:
    lab.set_console(ec2_job.instance["InstanceId"], cloud_init_console(lab.host_keys))
    result = ec2_job.ssh(f"{HOST}:results.txt", str(tmp_path / "fetched.txt"), tool="scp")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fetched.txt").read_text() == "computed on the instance\n"


def test_console_keys_that_the_instance_does_not_hold_stop_the_login(ec2_job: Ec2Job,
                                                                      lab: Lab) -> None:
    other_machine = (SAMPLES / "ec2-ubuntu-14.04-cloud-init-0.7.5.txt").read_text()
    lab.set_console(ec2_job.instance["InstanceId"], other_machine)
    result = ec2_job.ssh(HOST, "true")
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr.decode()


def test_without_console_keys_the_first_use_is_recorded_and_said_once(ec2_job: Ec2Job,
                                                                       lab: Lab) -> None:
    first = ec2_job.ssh(HOST, "echo one")   # moto's own console output: a kernel log, no keys
    assert first.stdout == b"one\n", first.stderr
    assert first.stderr.decode().count("first use") == 1
    assert pinned_keys(ec2_job) == sorted(lab.host_keys)
    second = ec2_job.ssh(HOST, "echo two")
    assert second.stdout == b"two\n", second.stderr
    assert "first use" not in second.stderr.decode()


def test_recorded_first_use_keys_catch_an_impostor(ec2_job: Ec2Job, lab: Lab) -> None:
    assert ec2_job.ssh(HOST, "true").returncode == 0
    recorded = ec2_job.known_hosts.read_text()
    impostor = (SAMPLES / "ec2-ubuntu-14.04-cloud-init-0.7.5.txt").read_text().split(
        "KEY KEYS-----\n")[1].splitlines()[1]   # someone else's ed25519 key
    ec2_job.known_hosts.write_text(recorded.replace(lab.host_keys[0], " ".join(impostor.split()[:2])))
    result = ec2_job.ssh(HOST, "true")
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr.decode()


def test_never_touches_the_users_global_known_hosts(ec2_job: Ec2Job, lab: Lab) -> None:
    global_file = Path.home() / ".ssh" / "known_hosts"
    before = global_file.read_bytes() if global_file.exists() else None
    assert ec2_job.ssh(HOST, "true").returncode == 0
    assert (global_file.read_bytes() if global_file.exists() else None) == before


def test_ssh_as_another_user_is_told_the_images_login_name(ec2_job: Ec2Job, lab: Lab) -> None:
    result = ec2_job.ssh(f"root@{HOST}", "true")
    assert result.returncode == 255
    assert f"use ssh {lab.login}@{HOST}" in result.stderr.decode()


def test_missing_key_pair_file_is_refused(ec2_job: Ec2Job) -> None:
    ec2_job.key_file.unlink()
    result = ec2_job.ssh(HOST, "true")
    assert result.returncode == 255
    assert f"its key pair file {ec2_job.key_file} is missing" in result.stderr.decode()


def test_key_pair_file_readable_by_others_is_refused(ec2_job: Ec2Job) -> None:
    ec2_job.key_file.chmod(0o644)
    result = ec2_job.ssh(HOST, "true")
    assert result.returncode == 255
    assert "readable by others (mode 0644)" in result.stderr.decode()
    assert b"PRIVATE KEY" not in result.stderr


def test_stopped_instance_is_refused_with_its_state(ec2_job: Ec2Job, lab: Lab) -> None:
    lab.seed("stop", ec2_job.instance["InstanceId"])
    result = ec2_job.ssh(HOST, "true")
    assert result.returncode == 255
    assert f"instance {ec2_job.instance['InstanceId']} is stopped, not running" in \
        result.stderr.decode()


def test_credentials_come_from_the_jobs_files(ec2_job: Ec2Job, lab: Lab) -> None:
    for name in ("access", "secret"):
        path = ec2_job.root / name
        path.write_text("testing\n")
        path.chmod(0o600)
    ec2_job.write_ad(EC2AccessKeyId="access", EC2SecretAccessKey=str(ec2_job.root / "secret"))
    no_chain = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    result = lab.client("ssh", "-F", str(ec2_job.ssh_config), "-o", "BatchMode=yes", HOST,
                        "echo ok", env={**ec2_job.env, **no_chain})
    assert result.stdout == b"ok\n", result.stderr
    ec2_job.write_ad(EC2AccessKeyId=None, EC2SecretAccessKey=None)
    result = lab.client("ssh", "-F", str(ec2_job.ssh_config), "-o", "BatchMode=yes", HOST,
                        "true", env={**ec2_job.env, **no_chain})
    assert result.returncode == 255
    assert "Unable to locate credentials" in result.stderr.decode()


def test_condor_ssh_to_job_runs_ssh_straight_to_the_instance(ec2_job: Ec2Job, lab: Lab) -> None:
    """`condor_ssh_to_job 40.0 -l USER whoami`, HTCondor's documented way for EC2 jobs."""
    lab.set_console(ec2_job.instance["InstanceId"], cloud_init_console(lab.host_keys))
    result = lab.client(sys.executable, "-m", "condor_job_proxy.ssh_to_job", "40.0",
                        "-l", lab.login, "whoami", env=ec2_job.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"{lab.login}\n"


def test_local_job_connect_path_does_not_import_boto3(bench: Workbench, job: Job) -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "condor_job_proxy",
                             "connect", "--relay", job.host], env=bench.env, input=b"",
                            capture_output=True, timeout=60)
    imported = [line.split("|")[-1].strip() for line in result.stderr.decode().splitlines()
                if line.startswith("import time:")]
    assert "proxycmd.transports.starter" in imported, result.stderr.decode()[-2000:]
    assert not [name for name in imported if name.split(".")[0] in ("boto3", "botocore")]


def test_local_job_connect_repoints_a_stale_identity_link(bench: Workbench, job: Job) -> None:
    link = bench.root / "state" / "condor-job-proxy" / "identities" / job.host
    link.parent.mkdir(parents=True)
    link.symlink_to(bench.root / "old-ec2-key.pem")
    result = bench.ssh(job.host, "echo ok")
    assert result.stdout == b"ok\n", result.stderr
    assert result.stderr == b""   # no "no such identity" warning either
    assert os.readlink(link) == str(bench.root / "config" / "condor-job-proxy" / "id_ed25519")


def test_ec2_job_through_the_connect_daemon(ec2_job: Ec2Job, lab: Lab, tmp_path: Path) -> None:
    """With the connect daemon's client in the ProxyCommand (as setup writes it), EC2 logins
    are served by the daemon, first-use notice included; `false` in place of the full
    command's interpreter proves no proxy process did the work."""
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    client = [sys.executable, "-S", "-E", "-s", str(ROOT / "proxycmd" / "quick.py"),
              str(run / "cjp-d-ec2")]
    include = ec2_job.ssh_config.read_text()
    ec2_job.ssh_config.write_text(include.replace(
        f"ProxyCommand {sys.executable} -m", f"ProxyCommand {' '.join(client)} {sys.executable} -m"))
    try:
        first = ec2_job.ssh(HOST, "echo one")     # the full command: it starts the daemon
        assert first.stdout == b"one\n", first.stderr
        sockets = lambda: list(run.glob("cjp-d-ec2-*.sock"))  # noqa: E731
        deadline = time.monotonic() + 20
        while not sockets() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sockets(), "no daemon started"
        served = ["-o", f"ProxyCommand={' '.join(client)} /bin/false -m condor_job_proxy "
                        "connect --identity " + str(tmp_path / "config" / "condor-job-proxy" /
                                                     "id_ed25519") + " %n %r"]
        ec2_job.known_hosts.unlink()              # the next login is a first use again
        second = ec2_job.ssh(*served, HOST, "echo two")
        assert second.stdout == b"two\n", second.stderr
        assert second.stderr.decode().count("first use") == 1
        assert pinned_keys(ec2_job) == sorted(lab.host_keys)
        third = ec2_job.ssh(*served, HOST, "echo three")
        assert third.stdout == b"three\n" and "first use" not in third.stderr.decode()
    finally:
        subprocess.run([sys.executable, "-m", "condor_job_proxy", "daemon", "--stop", "--socket",
                        str(next(iter(run.glob("cjp-d-ec2-*.sock")), run / "none"))],
                       env=ec2_job.env, capture_output=True)


def test_access_point_does_not_relay_an_ec2_job_to_a_laptop(ec2_job: Ec2Job, lab: Lab) -> None:
    """`connect --via` from a laptop: the job's key pair file would have to leave the access
    point, so its side answers with an error frame and connects nowhere."""
    from proxycmd import prelude
    from proxycmd.errors import ProxyError
    result = lab.client(sys.executable, "-m", "condor_job_proxy", "connect", "--relay",
                        "--prelude", HOST, lab.login, env=ec2_job.env, input=b"")
    assert result.returncode == 255 and result.stderr == b""
    read, write = os.pipe()
    os.write(write, result.stdout)
    os.close(write)
    with pytest.raises(ProxyError, match="^job-40.0 is an EC2 job: its key pair stays on the "
                                         "access point, so ssh to it from there$"):
        prelude.read(read, "ap")
    os.close(read)
    assert not ec2_job.known_hosts.exists()
