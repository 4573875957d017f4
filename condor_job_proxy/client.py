"""Python SSH clients into jobs: ``connect("job-32.0") -> paramiko.SSHClient``.

For Fabric, Parsl's SSH channels and notebooks, which speak SSH through paramiko rather than
running ssh. The session is set up as for ``ssh job-32.0`` (resolve, authenticate to the
starter or the pool's ssh-to-job, or go through the access point with ``via``); the job's
authenticated host key is pinned in the client's host-key store and any other key is
refused (RejectPolicy, never AutoAddPolicy). paramiko is imported here only.
"""
from __future__ import annotations

import base64
import socket
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from condor_job_proxy.proxycmd.errors import ProxyError

if TYPE_CHECKING:
    import paramiko

    from condor_job_proxy.proxycmd.model import ReadySession

__all__ = ["JobSocket", "ProxyError", "connect", "open_job", "pin"]   # ProxyError: what fails


class JobSocket(NamedTuple):
    """A job's session, before any SSH byte: for code that builds its own paramiko Transport."""
    sock: socket.socket
    host_keys: tuple[str, ...]   # "<type> <base64>": the only keys the job's sshd may show
    user: str                    # the login name the session runs as
    key_file: Path               # the private key this session logs in with

    def connect_kwargs(self) -> dict:
        """``SSHClient.connect`` (or Fabric's ``connect_kwargs``) arguments for this session."""
        return {"sock": self.sock, "key_filename": str(self.key_file), "look_for_keys": False,
                "allow_agent": False}

    def pin_in(self, client: paramiko.SSHClient, host: str) -> None:
        """Make ``client`` accept only the job's authenticated host keys for ``host``."""
        import paramiko
        pin(client.get_host_keys(), host, self.host_keys)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())


def open_job(host: str, via: str | None = None, via_command: str | None = None,
             queue: str | None = None) -> JobSocket:
    """Resolve and authenticate ``host`` (``job-32.0``), locally or through access point ``via``."""
    if via:
        from condor_job_proxy.proxycmd.via import hop
        from condor_job_proxy.proxycmd import client_files
        from condor_job_proxy.proxycmd.via import laptop
        sock, received = laptop.open_socket(hop.Hop(via, via_command or hop.DEFAULT_COMMAND), host)
        return JobSocket(sock, tuple(received.host_key.splitlines()), received.user,
                         client_files.identities_dir() / host)
    from condor_job_proxy.proxycmd.connect import connect as connect_job
    opened: list[ReadySession] = []
    connect_job(host, queue=queue, deliver=opened.append)
    ready = opened[0]
    return JobSocket(ready.sock, tuple(ready.host_key.splitlines()), ready.user, ready.identity)


def pin(store: paramiko.HostKeys, host: str, host_keys: tuple[str, ...]) -> None:
    """Put the job's authenticated host keys in a paramiko host-key store."""
    import paramiko
    for line in host_keys:
        key_type, data = line.split()[:2]
        store.add(host, key_type, paramiko.PKey.from_type_string(key_type, base64.b64decode(data)))


def connect(host: str, via: str | None = None, via_command: str | None = None,
            queue: str | None = None, timeout: float = 30.0) -> paramiko.SSHClient:
    """A connected, authenticated paramiko client in the job (close it when done)."""
    import paramiko
    job = open_job(host, via, via_command, queue)
    client = paramiko.SSHClient()
    job.pin_in(client, host)
    try:
        client.connect(host, username=job.user, timeout=timeout, banner_timeout=timeout,
                       auth_timeout=timeout, **job.connect_kwargs())
    except BaseException:
        client.close()
        job.sock.close()
        raise
    return client
