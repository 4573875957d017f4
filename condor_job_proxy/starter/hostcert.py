"""The host certificate a client hands the starter for its session's sshd (the hello's ``host_cert``).

A client whose ssh cannot use the per-job pin (asyncssh reads known_hosts before the proxy
runs) checks the job's sshd against the user's host CA instead; the proxy certifies the host key
this starter publishes beside its own key (``condor_job_proxy/proxycmd/hostca.py``). The starter checks only that
the text is one OpenSSH host certificate of its own host key with a valid CA signature, so that
sshd never gets something it would choke on, and names it on that session's command line. Each
client key has its own file (each user has their own CA), rewritten only when the certificate
changes: a reconnect writes nothing. The client's signature covers the hello, so only a client
authorized for the job can name one, and it is shown only to that client's sessions.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from ..common.keys import normalize

MAX_CERT = 4096
_written: dict[Path, str] = {}   # file -> the certificate it holds
_lock = threading.Lock()


class BadCertificate(ValueError):
    """The hello's host_cert is not a host certificate of this starter's host key."""


def checked(cert: object, host_key: str) -> str:
    """``cert`` as one line, if it is an OpenSSH host certificate of ``host_key``
    (ImportError where cryptography predates 40: the session then goes without)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.serialization import (
        Encoding, PublicFormat, SSHCertificate, SSHCertificateType, load_ssh_public_identity)
    if not isinstance(cert, str) or len(cert) > MAX_CERT or not cert.isascii() \
            or len(cert.split()) not in (2, 3) or cert != cert.strip() or "\n" in cert:
        raise BadCertificate("host_cert is not one certificate line")
    try:
        parsed = load_ssh_public_identity(cert.encode())
        if not isinstance(parsed, SSHCertificate) or parsed.type != SSHCertificateType.HOST:
            raise BadCertificate("host_cert is not a host certificate")
        parsed.verify_cert_signature()
        certified = parsed.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    except (ValueError, TypeError, InvalidSignature) as err:
        raise BadCertificate(f"host_cert does not parse or verify ({err})") from None
    if normalize(certified.decode()) != host_key:
        raise BadCertificate("host_cert certifies another host key than this starter's")
    return " ".join(cert.split()[:2])


def cert_file(directory: Path, client_key: str, cert: object, host_key: str) -> Path:
    """The file sshd reads ``cert`` from (``checked`` unless it holds it already): one per
    client key in the starter's directory."""
    from ..common.files import write_private
    name = hashlib.sha256(client_key.encode()).hexdigest()[:16]
    path = directory / f"host-cert-{name}.pub"
    with _lock:
        if _written.get(path) != cert:   # replaced whole: another session's sshd may read it
            cert = checked(cert, host_key)
            temp = path.with_suffix(".tmp")
            write_private(temp, cert + "\n", 0o600)
            os.replace(temp, path)
            _written[path] = cert
    return path
