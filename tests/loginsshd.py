"""An access point's login sshd: real OpenSSH on a loopback port, started (as root) by a test.

It lets in only the named accounts, each with one authorized public key, and gives their
sessions the environment an admin would (SetEnv: PATH with condor-job-proxy, a queue).
"""
from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conftest import can_connect, free_port

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class LoginSshd:
    port: int
    host_key: str        # "<type> <base64>", for the laptop's known_hosts

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key}\n"

    def host_block(self, alias: str, user: str) -> str:
        return (f"Host {alias}\n    HostName 127.0.0.1\n    Port {self.port}\n    User {user}\n"
                "    IdentitiesOnly yes\n    IdentityFile ~/.ssh/id_ed25519\n\n")


@contextlib.contextmanager
def login_sshd(directory: Path, authorized: dict[str, str],
               env: dict[str, str]) -> Iterator[LoginSshd]:
    """``authorized``: account name -> the public key that may log in as it."""
    directory.mkdir(mode=0o755, exist_ok=True)
    keys = directory / "authorized"
    keys.mkdir(mode=0o755)
    for name, key in authorized.items():
        (keys / name).write_text(key.strip() + "\n")
        (keys / name).chmod(0o644)
    host_key = directory / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    port = free_port()
    config = directory / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress 127.0.0.1:{port}", f"HostKey {host_key}", "PidFile none", "UsePAM no",
        f"AllowUsers {' '.join(authorized)}", "PermitRootLogin prohibit-password",
        "AuthenticationMethods publickey", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", f"AuthorizedKeysFile {keys}/%u",
        # The key files sit under /tmp, a world-writable path component StrictModes rejects.
        "StrictModes no",
        "SetEnv " + " ".join(f"{k}={v}" for k, v in env.items()), ""]))
    log = open(directory / "sshd.log", "wb")
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                               stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while not can_connect(port):
            assert process.poll() is None and time.monotonic() < deadline, \
                (directory / "sshd.log").read_text()
            time.sleep(0.05)
        public = (directory / "host_ed25519.pub").read_text().split()
        yield LoginSshd(port, " ".join(public[:2]))
    finally:
        process.terminate()
        process.wait(10)
        log.close()
