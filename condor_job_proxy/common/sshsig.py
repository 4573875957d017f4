"""Domain-separated signatures (SSHSIG) made and checked by OpenSSH's own ssh-keygen.

Using ``ssh-keygen -Y`` keeps cryptography out of the ProxyCommand's start-up (importing it
costs more than two ssh-keygen runs), reuses OpenSSH's reviewed implementation, and lets a
key that lives only in ssh-agent sign (``-f`` naming the public half).

Most of an ssh-keygen run is starting it and loading its key, not the signature itself, and
it reads the data last. So each operation can be started before its data exists
(``start_sign`` / ``start_verify``) and finished when the data arrives: on the proxy's side
the starts overlap the TCP connect and the starter's round trips.

The starter, a long-lived process for which importing ``cryptography`` is paid once, signs and
checks ed25519 SSHSIG in-process instead (``sign`` / ``verify``): two ssh-keygen runs less on
every connection's critical path. The format is OpenSSH's PROTOCOL.sshsig; other key types, or
no ``cryptography``, fall back to ssh-keygen.
"""
from __future__ import annotations

import base64
import hashlib
import os
import struct
import subprocess

from .keys import file_version

NAMESPACE = "condor-job-proxy"
_SIGNER = "signer"
_MAX_MATERIAL = 60000   # far below a pipe's capacity: writing to one can never block
_in_process = False      # sign_in_process() was called
_loaded_keys: dict[tuple, object] = {}   # (file, *keys.file_version): its parsed key


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


def start_sign(key_file: str) -> PendingSignature | InProcessSignature:
    """Start signing with the private key in ``key_file`` (or its .pub through ssh-agent)."""
    if _in_process:
        return InProcessSignature(key_file)
    return PendingSignature(key_file)


def start_verify(public_key: str) -> PendingVerification | InProcessVerification:
    """Start checking a signature by ``public_key``; the signature and data come later."""
    if _in_process:
        return InProcessVerification(public_key)
    return PendingVerification(public_key)


def signs_in_process(key_file: str) -> bool:
    """Whether ``sign`` needs no ssh-keygen for this key (which might ask for a passphrase)."""
    return _ed25519_private_key(key_file) is not None


def sign_in_process() -> None:
    """From now on ``start_sign``/``start_verify`` work in this process where they can: for a
    long-lived process (the connect daemon) that has paid for importing cryptography."""
    global _in_process
    _in_process = _have_cryptography()


class InProcessSignature:
    """``start_sign``'s answer in a long-lived process: nothing to start, ``sign`` at the end."""

    def __init__(self, key_file: str) -> None:
        self.key_file = key_file

    def finish(self, data: bytes) -> str:
        return sign(self.key_file, data)

    def cancel(self) -> None:
        """Nothing runs between start and finish."""


class InProcessVerification:
    """``start_verify``'s answer in a long-lived process: ``verify`` when the signature comes."""

    def __init__(self, public_key: str) -> None:
        self.public_key = public_key

    def finish(self, data: bytes, signature: str) -> None:
        verify(self.public_key, data, signature)

    def cancel(self) -> None:
        """Nothing runs between start and finish."""


def sign(key_file: str, data: bytes) -> str:
    """Sign ``data`` with the private key in ``key_file`` (or its .pub through ssh-agent)."""
    private = _ed25519_private_key(key_file)
    if private is None:
        return PendingSignature(key_file).finish(data)
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    signature = private.sign(_signed_blob(NAMESPACE.encode(), b"sha512", data))
    blob = (_MAGIC + struct.pack(">I", 1) + _string(_string(_ED25519) + _string(public))
            + _string(NAMESPACE.encode()) + _string(b"") + _string(b"sha512")
            + _string(_string(_ED25519) + _string(signature)))
    text = base64.b64encode(blob).decode()
    lines = [text[i:i + 70] for i in range(0, len(text), 70)]
    return "\n".join([_BEGIN, *lines, _END]) + "\n"


def verify(public_key: str, data: bytes, signature: str) -> None:
    """Check that ``signature`` over ``data`` was made by ``public_key`` in our namespace."""
    key_type, _, key_text = public_key.partition(" ")
    if key_type != _ED25519.decode() or not _have_cryptography():
        PendingVerification(public_key).finish(data, signature)
        return
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    try:
        expected_blob = base64.b64decode(key_text.split()[0], validate=True)
        key = Ed25519PublicKey.from_public_bytes(_ed25519_raw_public(expected_blob))
        fields = _parse_signature(signature)
        if fields["publickey"] != expected_blob or fields["namespace"] != NAMESPACE.encode():
            raise ValueError("another key or namespace")
        key.verify(fields["signature"], _signed_blob(fields["namespace"], fields["hash"], data,
                                                     fields["reserved"]))
    except (ValueError, IndexError, InvalidSignature, struct.error):
        raise SignatureError("signature does not verify") from None


_MAGIC = b"SSHSIG"
_ED25519 = b"ssh-ed25519"
_BEGIN, _END = "-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----"
_HASHES = {b"sha256": hashlib.sha256, b"sha512": hashlib.sha512}


def _have_cryptography() -> bool:
    try:
        import cryptography.hazmat.primitives.asymmetric.ed25519  # noqa: F401
    except ImportError:
        return False
    return True


def _ed25519_private_key(key_file: str) -> object | None:
    """The key in ``key_file`` if it is an unencrypted ed25519 key and cryptography is here.

    Parsed once per version of the file: the starter and the connect daemon sign with the
    same key on every connect."""
    if key_file.endswith(".pub") or not _have_cryptography():
        return None
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key
    try:
        with open(key_file, "rb") as file:
            info = os.fstat(file.fileno())
            version = (key_file, *file_version(info))
            if version in _loaded_keys:
                return _loaded_keys[version]
            key = load_ssh_private_key(file.read(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    key = key if isinstance(key, Ed25519PrivateKey) else None
    _loaded_keys.clear()     # only the current version of each file is worth keeping
    _loaded_keys[version] = key
    return key


def _signed_blob(namespace: bytes, hash_name: bytes, data: bytes, reserved: bytes = b"") -> bytes:
    """What SSHSIG signs: the preamble, the namespace and a hash of the message."""
    digest = _HASHES[hash_name](data).digest()
    return _MAGIC + _string(namespace) + _string(reserved) + _string(hash_name) + _string(digest)


def _parse_signature(armored: str) -> dict[str, bytes]:
    """The fields of one armored SSHSIG, version 1, ed25519; ValueError for anything else."""
    lines = armored.strip().splitlines()
    if len(lines) < 3 or lines[0] != _BEGIN or lines[-1] != _END:
        raise ValueError("not an SSH signature")
    blob = base64.b64decode("".join(lines[1:-1]), validate=True)
    if blob[:6] != _MAGIC or struct.unpack(">I", blob[6:10])[0] != 1:
        raise ValueError("not an SSHSIG version 1 signature")
    reader = _Reader(blob[10:])
    fields = {name: reader.string()
              for name in ("publickey", "namespace", "reserved", "hash", "wrapped")}
    inner = _Reader(fields.pop("wrapped"))
    if inner.string() != _ED25519:
        raise ValueError("not an ed25519 signature")
    fields["signature"] = inner.string()
    if not (reader.done() and inner.done()) or fields["hash"] not in _HASHES:
        raise ValueError("malformed signature")
    return fields


def _ed25519_raw_public(blob: bytes) -> bytes:
    reader = _Reader(blob)
    if reader.string() != _ED25519:
        raise ValueError("not an ed25519 key")
    raw = reader.string()
    if len(raw) != 32 or not reader.done():
        raise ValueError("malformed ed25519 key")
    return raw


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class _Reader:
    """SSH wire-format strings, read strictly in order."""

    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def string(self) -> bytes:
        (length,) = struct.unpack(">I", self.data[self.offset:self.offset + 4])
        start = self.offset + 4
        if start + length > len(self.data):
            raise ValueError("truncated")
        self.offset = start + length
        return self.data[start:self.offset]

    def done(self) -> bool:
        return self.offset == len(self.data)


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
