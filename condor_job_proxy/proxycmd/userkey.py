"""The user's job-access key pair: created once by setup, never regenerated behind their back."""
from __future__ import annotations

from pathlib import Path

from condor_job_proxy.common import paths
from condor_job_proxy.common.keys import public_key_path

from .errors import ProxyError


def ensure_key(path: Path | None = None) -> tuple[Path, bool]:
    """Create an ed25519 key pair (private 0600) unless one exists; returns (path, created)."""
    import getpass  # here: the connect path reads public keys through this module too
    import socket
    import subprocess
    path = path or paths.user_key_path()
    if path.exists():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    comment = f"condor-job-proxy {getpass.getuser()}@{socket.gethostname()}"
    proc = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                           "-f", str(path)], capture_output=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise ProxyError(f"ssh-keygen could not create {path}: "
                         f"{proc.stderr.decode(errors='replace').strip()}")
    return path, True


def public_key(path: Path | None = None) -> str:
    pub = public_key_path(path or paths.user_key_path())
    try:
        return pub.read_text().strip()
    except OSError:
        raise ProxyError(f"no job-access key at {pub} (run: condor-job-proxy setup)") from None


def public_key_blob(identity: Path, setup: str = "condor-job-proxy setup") -> str:
    """``<type> <base64>`` of the public half beside ``identity``: what a starter lets in.
    ``setup`` is the command that makes it, for the error."""
    path = public_key_path(identity)
    try:
        return " ".join(path.read_text().split()[:2])
    except OSError as err:
        raise ProxyError(f"cannot read your job-access public key {path}: {err.strerror} "
                         f"(run: {setup})") from None
