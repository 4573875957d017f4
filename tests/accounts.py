"""Real unix accounts for tests where the job, its owner and a stranger are different users.

Our code must run as those accounts, so it is installed into a venv made with Debian's
/usr/bin/python3 in a directory every account can read (the default python3 lives under
root's home, which others cannot enter). The venv is rebuilt when the sources change.
"""
from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# One venv per checkout, so that several checkouts on one machine do not trample each other.
VENV = Path("/var/tmp/condor-job-proxy-tests") / hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
# Account names may get a suffix (CJP_TEST_ACCOUNT_SUFFIX) for the same reason.
SUFFIX = os.environ.get("CJP_TEST_ACCOUNT_SUFFIX", "")
PACKAGES = ("condor_job_proxy",)


@dataclass(frozen=True)
class Account:
    name: str
    home: Path

    def run(self, *argv: str, env: dict | None = None, cwd: Path | None = None,
            input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*argv, env=env), cwd=cwd, input=input,
                              capture_output=True, timeout=timeout)

    def popen(self, *argv: str, env: dict | None = None, cwd: Path | None = None,
              **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(*argv, env=env), cwd=cwd, **kwargs)

    def command(self, *argv: str, env: dict | None = None) -> list[str]:
        """argv that runs as this account with a clean login-like environment."""
        base = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name,
                "SHELL": "/bin/bash", "PATH": f"{VENV}/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                "LANG": "C.UTF-8"}
        base.update(env or {})
        return ["runuser", "-u", self.name, "--", "env", "-i",
                *(f"{k}={v}" for k, v in base.items()), *argv]


# Homes as long as many real ones (/home/<department>/<group>/<login>, NFS mounts): 48 bytes
# and more, where the state directory leaves no room for a socket path.
LONG_HOMES = Path("/home/hpc-users/astro-particle-physics")


def account(role: str, shell: str = "/bin/bash", long_home: bool = False) -> Account:
    """Create the account cjp-<role> if needed, with a fresh home (no config from an earlier run),
    under LONG_HOMES if ``long_home``."""
    name = f"cjp-{role}{SUFFIX}"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        where = ["-d", str(LONG_HOMES / name)] if long_home else []
        if long_home:
            LONG_HOMES.mkdir(parents=True, exist_ok=True, mode=0o755)
        subprocess.run(["useradd", "-m", *where, "-s", shell, name], check=True)
        entry = pwd.getpwnam(name)
    if entry.pw_shell != shell:
        subprocess.run(["usermod", "-s", shell, name], check=True)
    home = Path(entry.pw_dir)
    for leftover in (".ssh", ".config", ".local"):
        shutil.rmtree(home / leftover, ignore_errors=True)
    return Account(name, home)


def ensure_venv() -> Path:
    """A venv every account can run, holding this checkout's code."""
    stamp = VENV / ".source-hash"
    digest = _source_hash()
    if stamp.exists() and stamp.read_text() == digest:
        return VENV
    shutil.rmtree(VENV, ignore_errors=True)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(VENV.parent, 0o755)
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    # What the connect path, the starter and the Python client (paramiko) import; not boto3.
    subprocess.run([*pip, "click", "platformdirs", "wheel", "paramiko"], check=True)
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", str(ROOT)], check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(VENV)], check=True)
    stamp.write_text(digest)
    return VENV


def _source_hash() -> str:
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted([*(ROOT / package).rglob("*.py"), *(ROOT / package).rglob("*.c")]):
            digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    digest.update((ROOT / "pyproject.toml").read_bytes())
    return digest.hexdigest()
