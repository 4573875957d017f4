"""A small cloud on this machine: moto as the EC2 endpoint and a real sshd as "the instance".

Two network namespaces joined by a veth pair: the client's (192.0.2.1, where ssh, the proxy and
moto run; its /etc/hosts, bind-mounted by ``ip netns exec``, names the EC2 service and each
instance's public DNS name) and the instance's (192.0.2.2, a root ``sshd -D`` on port 22 with
its own host keys). Every instance moto reports resolves to that sshd through the hosts file,
as a real instance's name resolves through DNS: the product has no special path for tests.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIENT_ADDRESS, INSTANCE_ADDRESS = "192.0.2.1", "192.0.2.2"   # TEST-NET-1, inside our namespaces
SERVICE_HOST, SERVICE_PORT = "ec2.us-east-1.cjp.test", 5000    # ec2.<region>.<domain>, as HTCondor needs
SERVICE_URL = f"http://{SERVICE_HOST}:{SERVICE_PORT}/"


@dataclass
class Lab:
    root: Path
    client_ns: str
    instance_ns: str
    login: str                     # the account the "image" lets in
    env: dict[str, str]
    host_keys: list[str] = field(default_factory=list)   # the sshd's, "<type> <base64>"
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def hosts_file(self) -> Path:
        return Path("/etc/netns") / self.client_ns / "hosts"

    def client(self, *argv: str, env: dict | None = None, input: bytes | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a program on the client side of the lab (its network and /etc/hosts)."""
        return subprocess.run(["ip", "netns", "exec", self.client_ns, *argv],
                              env={**self.env, **(env or {})}, input=input, capture_output=True,
                              timeout=timeout)

    def seed(self, *args: str) -> dict:
        result = self.client(sys.executable, str(HERE / "ec2_seed.py"), args[0], SERVICE_URL,
                             *args[1:])
        assert result.returncode == 0, result.stderr.decode()
        return json.loads(result.stdout)

    def launch(self, key_file: Path) -> dict:
        """An instance as HTCondor starts one: key pair file written, name resolving to our sshd."""
        instance = self.seed("launch", str(key_file))
        public_key = subprocess.run(["ssh-keygen", "-y", "-f", str(key_file)], check=True,
                                    capture_output=True, text=True).stdout
        with open(self.root / "authorized_keys", "a") as keys:
            keys.write(public_key)
        with open(self.hosts_file, "a") as hosts:
            hosts.write(f"{INSTANCE_ADDRESS} {instance['PublicDnsName']}\n")
        return instance

    def set_console(self, instance_id: str, text: str) -> None:
        (self.root / "console" / instance_id).write_text(text)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for namespace in (self.client_ns, self.instance_ns):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        shutil.rmtree(self.hosts_file.parent, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


def start_lab(login: str) -> Lab:
    tag = str(os.getpid())[-6:]
    root = Path(tempfile.mkdtemp(prefix="cjp-ec2-lab-"))
    os.chmod(root, 0o755)            # sshd reads authorized_keys as the login user
    (root / "console").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_CONFIG_FILE": str(root / "no-aws-config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
           "CJP_TEST_CONSOLE_DIR": str(root / "console")}
    env.pop("AWS_DEFAULT_REGION", None)
    env.pop("AWS_PROFILE", None)
    lab = Lab(root, f"cjp-ec2c-{tag}", f"cjp-ec2i-{tag}", login, env)
    try:
        _network(lab, tag)
        _start_moto(lab)
        _start_sshd(lab)
    except BaseException:
        lab.stop()
        raise
    return lab


def _network(lab: Lab, tag: str) -> None:
    client_if, instance_if = f"cjpc{tag}", f"cjpi{tag}"
    for command in (["ip", "netns", "add", lab.client_ns], ["ip", "netns", "add", lab.instance_ns],
                    ["ip", "link", "add", client_if, "type", "veth", "peer", "name", instance_if],
                    ["ip", "link", "set", client_if, "netns", lab.client_ns],
                    ["ip", "link", "set", instance_if, "netns", lab.instance_ns],
                    ["ip", "-n", lab.client_ns, "addr", "add", f"{CLIENT_ADDRESS}/24", "dev", client_if],
                    ["ip", "-n", lab.instance_ns, "addr", "add", f"{INSTANCE_ADDRESS}/24", "dev",
                     instance_if]):
        subprocess.run(command, check=True, capture_output=True)
    for namespace, interface in ((lab.client_ns, client_if), (lab.instance_ns, instance_if)):
        for link in ("lo", interface):
            subprocess.run(["ip", "-n", namespace, "link", "set", link, "up"], check=True)
    lab.hosts_file.parent.mkdir(parents=True, exist_ok=True)
    lab.hosts_file.write_text(f"127.0.0.1 localhost\n127.0.0.1 {SERVICE_HOST}\n")


def _start_moto(lab: Lab) -> None:
    log = open(lab.root / "moto.log", "wb")
    lab.processes.append(subprocess.Popen(
        ["ip", "netns", "exec", lab.client_ns, sys.executable, str(HERE / "ec2_endpoint.py"),
         "-H", "127.0.0.1", "-p", str(SERVICE_PORT)],
        env=lab.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log))
    _wait_listening(lab, lab.client_ns, f"127.0.0.1:{SERVICE_PORT}", lab.root / "moto.log")


def _start_sshd(lab: Lab) -> None:
    keys = []
    for kind in ("ed25519", "ecdsa"):
        key = lab.root / f"ssh_host_{kind}_key"
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(key)], check=True)
        keys.append(key)
        lab.host_keys.append(" ".join(key.with_suffix(".pub").read_text().split()[:2]))
    (lab.root / "authorized_keys").touch(mode=0o644)
    config = lab.root / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress {INSTANCE_ADDRESS}", "Port 22", *(f"HostKey {key}" for key in keys),
        f"AuthorizedKeysFile {lab.root}/authorized_keys", f"AllowUsers {lab.login}",
        "UsePAM no", "StrictModes no", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", f"PidFile {lab.root}/sshd.pid",
        "Subsystem sftp internal-sftp", ""]))
    log = open(lab.root / "sshd.log", "wb")
    lab.processes.append(subprocess.Popen(
        ["ip", "netns", "exec", lab.instance_ns, "/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log))
    _wait_listening(lab, lab.instance_ns, f"{INSTANCE_ADDRESS}:22", lab.root / "sshd.log")


def _wait_listening(lab: Lab, namespace: str, address: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listening = subprocess.run(["ip", "netns", "exec", namespace, "ss", "-Hltn"],
                                   capture_output=True, text=True).stdout
        if address in listening:
            return
        if any(p.poll() is not None for p in lab.processes):
            break
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {address}: {log.read_text()}")
