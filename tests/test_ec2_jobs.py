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
from htcondor_standin.htcondor2._pool import ec2_job_ad
from condor_job_proxy.common.jobid import JobId

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

    def proxy(self, *args: str) -> subprocess.CompletedProcess:
        return self.lab.client(sys.executable, "-m", "condor_job_proxy", *args, env=self.env)

    def ssh(self, *args: str, tool: str = "ssh") -> subprocess.CompletedProcess:
        return self.lab.client(tool, "-F", str(self.ssh_config), "-o", "BatchMode=yes", *args,
                               env=self.env)


@pytest.fixture
def ec2_job(lab: Lab, tmp_path: Path) -> Ec2Job:
    """Job 40.0 running as an EC2 instance, its ad as the schedd shows it, and a user who ran
    `setup` and `config refresh` (the image's login user configured for its AMI)."""
    key_file = tmp_path / "job40.pem"
    instance = lab.launch(key_file)
    credentials = (tmp_path / "access-key", tmp_path / "secret-key")
    for path in credentials:
        path.write_text("testing\n")
        path.chmod(0o600)
    ad = ec2_job_ad(JOB.cluster, getpass.getuser(), SERVICE_URL, instance, str(key_file),
                    (str(credentials[0]), str(credentials[1])), str(tmp_path))
    config_dir = tmp_path / "config" / "condor-job-proxy"
    config_dir.mkdir(parents=True)
    (config_dir / "config.toml").write_text(
        'resolver = "htcondor"\nconnect_daemon = false\ncontrol_master = false\n'
        f'[ec2.users_by_ami]\n"{instance["ImageId"]}" = "{lab.login}"\n')
    job = Ec2Job(lab, tmp_path, instance, key_file, ad, tmp_path / "ssh_config")
    job.write_ad()
    for step in (("setup", "--yes", "--ssh-config", str(job.ssh_config)), ("config", "refresh")):
        result = job.proxy(*step)
        assert result.returncode == 0, result.stderr
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
    no_chain = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    result = lab.client("ssh", "-F", str(ec2_job.ssh_config), "-o", "BatchMode=yes", HOST,
                        "echo ok", env={**ec2_job.env, **no_chain})
    assert result.stdout == b"ok\n", result.stderr
    # condor_submit's "FROM INSTANCE": the submit machine's own role, i.e. boto3's chain.
    ec2_job.write_ad(EC2AccessKeyId="FROM INSTANCE", EC2SecretAccessKey="FROM INSTANCE")
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


# --- one login user: the generated Host block, connect and condor_ssh_to_job agree -------------

def test_config_refresh_names_the_images_login_user_not_the_submitter(ec2_job: Ec2Job,
                                                                      lab: Lab) -> None:
    include = ec2_job.proxy("config", "show").stdout.decode()
    block = include[include.index(f"Host {HOST} job-40\n"):].split("\n\n")[0]
    assert f"    User {lab.login}" in block.splitlines(), block
    listed = json.loads(ec2_job.proxy("jobs", "--json").stdout)
    assert [(job["job"], job["user"]) for job in listed] == [("40.0", lab.login)]


def test_ssh_job_host_reaches_an_ec2_job_first_try(ec2_job: Ec2Job, lab: Lab) -> None:
    result = ec2_job.ssh(HOST, "whoami")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"{lab.login}\n"
    assert "runs as user" not in result.stderr.decode()


def test_condor_ssh_to_job_logs_in_as_the_images_user(ec2_job: Ec2Job, lab: Lab) -> None:
    """Without -l: the same login user as the generated Host block, first try."""
    result = lab.client(sys.executable, "-m", "condor_job_proxy.ssh_to_job", "40.0", "whoami",
                        env=ec2_job.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"{lab.login}\n"
    assert lab.client(sys.executable, "-m", "condor_job_proxy.ssh_to_job", "40.0", "true",
                      env=ec2_job.env).returncode == 0


def test_the_advice_after_a_wrong_login_name_works(ec2_job: Ec2Job, lab: Lab) -> None:
    wrong = ec2_job.ssh(f"root@{HOST}", "true")
    assert wrong.returncode == 255
    assert f"use ssh {lab.login}@{HOST} (or run: condor-job-proxy config refresh)" in \
        wrong.stderr.decode()
    assert ec2_job.proxy("config", "refresh").returncode == 0
    result = ec2_job.ssh(HOST, "whoami")
    assert result.stdout.decode() == f"{lab.login}\n", result.stderr


def test_local_job_connect_path_does_not_import_boto3(bench: Workbench, job: Job) -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "condor_job_proxy",
                             "connect", "--relay", job.host], env=bench.env, input=b"",
                            capture_output=True, timeout=60)
    imported = [line.split("|")[-1].strip() for line in result.stderr.decode().splitlines()
                if line.startswith("import time:")]
    assert "condor_job_proxy.proxycmd.transports.starter" in imported, result.stderr.decode()[-2000:]
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
    client = [sys.executable, "-S", "-E", "-s",
              str(ROOT / "condor_job_proxy" / "proxycmd" / "daemon" / "quick.py"), str(run / "cjp-d-ec2")]
    include_file = tmp_path / "config" / "condor-job-proxy" / "ssh_config"
    include = include_file.read_text()
    include_file.write_text(include.replace(
        f"ProxyCommand {sys.executable} -m", f"ProxyCommand {' '.join(client)} {sys.executable} -m"))
    try:
        first = ec2_job.ssh(HOST, "echo one")     # the full command: it starts the daemon
        assert first.stdout == b"one\n", first.stderr
        sockets = lambda: list(run.glob("cjp-d-ec2-*.sock"))  # noqa: E731
        deadline = time.monotonic() + 20
        while not sockets() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sockets(), "no daemon started"
        command = next(line.split("ProxyCommand ", 1)[1] for line in
                       include_file.read_text().splitlines()
                       if line.strip().startswith("ProxyCommand "))
        served = ["-o", "ProxyCommand=" + command.replace(f"{sys.executable} -m",
                                                          "/bin/false -m")]
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
    from condor_job_proxy.proxycmd.via import prelude
    from condor_job_proxy.proxycmd.errors import ProxyError
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
