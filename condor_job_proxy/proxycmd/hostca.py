"""The user's host certificate authority, for ssh clients that cannot use the per-job pin.

OpenSSH reads a job's known_hosts file after the proxy has pinned the session's host key
there. asyncssh reads known_hosts when it starts the ProxyCommand, before the proxy runs, and
expands no tokens in UserKnownHostsFile; it reads the include's ``known_hosts/%h`` literally.
That file (written by ``condor_job_proxy/sshconfig/readers.py``) trusts this CA for the include's host names,
and the proxy has the CA certify the host key a job's starter publishes beside its own key,
for the job's names only; the starter gives the certificate to the session's sshd.

The CA is a key pair of its own in the config dir (``host_ca``, 0600): never the job-access
key, which signs logins. It signs only host certificates, only for a host key that the job's
queue record or job ad publishes (as trusted as the starter key the handshake then checks),
and only for names that reach that job.
"""
from __future__ import annotations

import functools
import os
import secrets
import time
from pathlib import Path

from condor_job_proxy.common import paths, sshsig

CA_FILE = "host_ca"
VALID_BEFORE = 2**64 - 1     # no end, like the pins: see SECURITY.md, "The host CA"
CLOCK_SKEW = 300             # valid from this many seconds ago: the job's clock may be behind


def ca_path() -> Path:
    return paths.config_dir() / CA_FILE


def ensure_ca() -> str:
    """The CA's public key line, making the key pair (0600, O_EXCL) when there is none."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption,
                                                              PrivateFormat, PublicFormat)
    private, public = ca_path(), ca_path().with_suffix(".pub")
    if not private.exists():
        key = Ed25519PrivateKey.generate()
        private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
        try:
            fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:   # another process made it meanwhile: theirs stands
            pass
        else:
            with os.fdopen(fd, "wb") as file:
                file.write(text)
    key = _ca_key()
    if key is None:
        raise OSError(f"{private} is not an unencrypted ed25519 private key")
    line = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    if not public.exists() or public.read_text().split()[:2] != line.split():
        public.write_text(f"{line} condor-job-proxy host CA\n")
    return line


def _ca_key():
    return sshsig.ed25519_private_key(str(ca_path()))


@functools.lru_cache(maxsize=256)   # the connect daemon: one signature per job and name
def certify(host_key: str, names: tuple[str, ...]) -> str:
    """An OpenSSH host certificate (one line) of ``host_key`` for ``names``."""
    from cryptography.hazmat.primitives.serialization import (SSHCertificateBuilder,
                                                              SSHCertificateType,
                                                              load_ssh_public_key)
    ensure_ca()
    now = int(time.time())
    cert = (SSHCertificateBuilder()
            .public_key(load_ssh_public_key(host_key.encode()))
            .serial(secrets.randbits(64))
            .type(SSHCertificateType.HOST)
            .key_id(f"condor-job-proxy {names[0]}".encode())
            .valid_principals([name.encode() for name in names])
            .valid_after(max(0, now - CLOCK_SKEW))
            .valid_before(VALID_BEFORE)
            .sign(_ca_key()))
    return cert.public_bytes().decode()
