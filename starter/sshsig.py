"""Domain-separated signatures (SSHSIG) made and checked by OpenSSH's own ssh-keygen.

Using ``ssh-keygen -Y`` keeps cryptography out of the ProxyCommand's start-up (importing it
costs more than two ssh-keygen runs), reuses OpenSSH's reviewed implementation, and lets a
key that lives only in ssh-agent sign (``-f`` naming the public half).

Most of an ssh-keygen run is starting it and loading its key, not the signature itself, and
it reads the data last. So each operation can be started before its data exists
(``start_sign`` / ``start_verify``) and finished when the data arrives: on the proxy's side
the starts overlap the TCP connect and the starter's round trips.
"""
from __future__ import annotations

import os
import subprocess

NAMESPACE = "condor-job-proxy"
_SIGNER = "signer"
_MAX_MATERIAL = 60000   # far below a pipe's capacity: writing to one can never block


class SignatureError(Exception):
    """Signing failed, or a signature did not verify."""


class PendingSignature:
    """An ``ssh-keygen -Y sign`` that has started and waits for the data on its stdin."""

    def __init__(self, key_file: str) -> None:
        self.key_file = key_file
        self._proc = subprocess.Popen(
            ["ssh-keygen", "-q", "-Y", "sign", "-n", NAMESPACE, "-f", key_file],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def finish(self, data: bytes) -> str:
        out, err = self._proc.communicate(data)
        if self._proc.returncode != 0:
            reason = err.decode(errors="replace").strip().splitlines()
            raise SignatureError(f"cannot sign with {self.key_file}: "
                                 f"{reason[-1] if reason else 'ssh-keygen failed'}")
        return out.decode()

    def cancel(self) -> None:
        _end(self._proc)


class PendingVerification:
    """An ``ssh-keygen -Y verify`` for one public key, waiting for a signature and its data."""

    def __init__(self, public_key: str) -> None:
        allowed = f'{_SIGNER} namespaces="{NAMESPACE}" {public_key}\n'.encode()
        sig_read, self._sig_write = os.pipe()
        allowed_read, allowed_write = os.pipe()
        try:
            _write_all_and_close(allowed_write, allowed)
            self._proc = subprocess.Popen(
                ["ssh-keygen", "-Y", "verify", "-n", NAMESPACE, "-I", _SIGNER,
                 "-f", f"/dev/fd/{allowed_read}", "-s", f"/dev/fd/{sig_read}"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(sig_read, allowed_read))
        except BaseException:
            os.close(self._sig_write)
            raise
        finally:
            os.close(sig_read)
            os.close(allowed_read)

    def finish(self, data: bytes, signature: str) -> None:
        """Raise SignatureError unless ``signature`` over ``data`` is by the key, in our namespace."""
        try:
            _write_all_and_close(self._sig_write, signature.encode())
        except SignatureError:
            _end(self._proc)
            raise
        finally:
            self._sig_write = -1
        self._proc.communicate(data)
        if self._proc.returncode != 0:
            raise SignatureError("signature does not verify")

    def cancel(self) -> None:
        if self._sig_write >= 0:
            os.close(self._sig_write)
            self._sig_write = -1
        _end(self._proc)


def start_sign(key_file: str) -> PendingSignature:
    """Start signing with the private key in ``key_file`` (or its .pub through ssh-agent)."""
    return PendingSignature(key_file)


def start_verify(public_key: str) -> PendingVerification:
    """Start checking a signature by ``public_key``; the signature and data come later."""
    return PendingVerification(public_key)


def sign(key_file: str, data: bytes) -> str:
    """Sign ``data`` with the private key in ``key_file`` (or its .pub through ssh-agent)."""
    return start_sign(key_file).finish(data)


def verify(public_key: str, data: bytes, signature: str) -> None:
    """Check that ``signature`` over ``data`` was made by ``public_key`` in our namespace."""
    start_verify(public_key).finish(data, signature)


def _write_all_and_close(fd: int, data: bytes) -> None:
    try:
        if len(data) > _MAX_MATERIAL:
            raise SignatureError("signature material too large")
        os.write(fd, data)
    finally:
        os.close(fd)


def _end(proc: subprocess.Popen) -> None:
    """Stop an operation that was never finished (or do nothing if it was)."""
    if proc.returncode is not None:
        return
    if proc.poll() is None:
        proc.kill()
    proc.communicate()
