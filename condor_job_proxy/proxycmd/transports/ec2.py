"""EC2 instances: plain TCP to the instance's sshd, no handshake of ours.

Host keys come from the instance's console (cloud-init prints them there), which the resolver
read through the authenticated EC2 API. When the console shows none, the keys the instance
offers on the first connection are recorded in the job's own known_hosts and trusted from then
on for that instance, like ssh's ``accept-new``; the generated config keeps
``StrictHostKeyChecking yes``, so the proxy reads them itself with OpenSSH's ``ssh-keyscan``
(every key type, on its own connections) and says so once.
"""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from condor_job_proxy.common.names import printable

from ..resolvers import ec2_console as cloudinit
from .. import client_files
from ..errors import ProxyError
from ..model import JobEndpoint, OpenSession, SessionRequest
from . import BaseTransport

CONNECT_SECONDS = 10.0
SCAN_SECONDS = 10


class Transport(BaseTransport):
    """An EC2 instance's own sshd, host keys from its console or first use."""
    name = "ec2"
    login_key_stays_here = True   # the job's key pair file
    plain_sshd = True

    def open_session(self, endpoint: JobEndpoint, request: SessionRequest) -> OpenSession:
        keys, note, notice = host_keys(endpoint, request.known_hosts)
        sock = _connect(endpoint)
        return OpenSession(sock, "\n".join(keys), endpoint.user, note, notice=notice)


def host_keys(endpoint: JobEndpoint, known_hosts: Path | None) -> tuple[list[str], str, str]:
    """The keys to pin, where they came from (the console, else the first use's record), and
    what to tell the user about it (only on a first use)."""
    if endpoint.host_keys:
        return list(endpoint.host_keys), f"console output of EC2 instance {endpoint.instance}", ""
    first_use = f"first use of EC2 instance {endpoint.instance}"
    if known_hosts is not None:
        note, keys = client_files.read_pins(known_hosts)
        if note == first_use and keys:
            return keys, note, ""
    keys = _scan(endpoint)
    where = known_hosts or "the job's known_hosts file"
    notice = (f"condor-job-proxy: job {endpoint.job}: the console of EC2 instance "
              f"{endpoint.instance} shows no host keys; trusting the keys it offers now "
              f"(first use), recorded in {where}")
    return keys, first_use, notice


def _scan(endpoint: JobEndpoint) -> list[str]:
    host, port = _split(endpoint.address)
    try:
        scan = subprocess.run(["ssh-keyscan", "-T", str(SCAN_SECONDS), "-p", str(port), "--", host],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=SCAN_SECONDS * 4)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ProxyError(f"job {endpoint.job}: cannot read the host keys of EC2 instance "
                         f"{endpoint.instance}: {err}") from None
    keys = []
    for line in scan.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#") and cloudinit.well_formed(*fields[1:3]):
            keys.append(f"{fields[1]} {fields[2]}")
    if not keys:
        # ssh-keyscan's stderr carries what the far end sent (its version line): printable only.
        reason = scan.stderr.strip().splitlines()[-1:] or ["no keys offered"]
        raise ProxyError(f"job {endpoint.job}: cannot read the host keys of EC2 instance "
                         f"{endpoint.instance} at {endpoint.address}: {printable(reason[0])}")
    return keys


def _connect(endpoint: JobEndpoint) -> socket.socket:
    host, port = _split(endpoint.address)
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_SECONDS)
    except OSError as err:
        reason = getattr(err, "strerror", None) or err
        raise ProxyError(f"job {endpoint.job}: cannot reach EC2 instance {endpoint.instance} "
                         f"at {endpoint.address}: {reason}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)
    return sock


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)
