"""Domain-separated signatures (SSHSIG) made and checked by OpenSSH's own ssh-keygen.

Using ``ssh-keygen -Y`` keeps cryptography out of the ProxyCommand's start-up (importing it
costs more than two ssh-keygen runs), reuses OpenSSH's reviewed implementation, and lets a
key that lives only in ssh-agent sign (``-f`` naming the public half).
"""
from __future__ import annotations

import os
import subprocess

NAMESPACE = "condor-job-proxy"
_SIGNER = "signer"


class SignatureError(Exception):
    """Signing failed, or a signature did not verify."""


def sign(key_file: str, data: bytes) -> str:
    """Sign ``data`` with the private key in ``key_file`` (or its .pub through ssh-agent)."""
    proc = subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", NAMESPACE, "-f", key_file],
                          input=data, capture_output=True)
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise SignatureError(f"cannot sign with {key_file}: {reason[-1] if reason else 'ssh-keygen failed'}")
    return proc.stdout.decode()


def verify(public_key: str, data: bytes, signature: str) -> None:
    """Check that ``signature`` over ``data`` was made by ``public_key`` in our namespace."""
    allowed = f'{_SIGNER} namespaces="{NAMESPACE}" {public_key}\n'.encode()
    sig_read, sig_write = os.pipe()
    allowed_read, allowed_write = os.pipe()
    try:
        # Both are far below a pipe's capacity, so writing before ssh-keygen starts cannot block.
        _write_all_and_close(sig_write, signature.encode())
        _write_all_and_close(allowed_write, allowed)
        proc = subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-n", NAMESPACE, "-I", _SIGNER,
             "-f", f"/dev/fd/{allowed_read}", "-s", f"/dev/fd/{sig_read}"],
            input=data, capture_output=True, pass_fds=(sig_read, allowed_read))
    finally:
        os.close(sig_read)
        os.close(allowed_read)
    if proc.returncode != 0:
        raise SignatureError("signature does not verify")


def _write_all_and_close(fd: int, data: bytes) -> None:
    try:
        if len(data) > 60000:
            raise SignatureError("signature material too large")
        os.write(fd, data)
    finally:
        os.close(fd)
