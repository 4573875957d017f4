"""``connect --relay --prelude``: the access point's side of a laptop's ``connect --via``.

Resolve and open the session exactly as ``ssh job-N.P`` on the access point would, then tell
the laptop what it needs to check the job (host key, login user, any session key) in one
prelude frame on stdout, then relay raw bytes. Stdout belongs to the laptop from the first
byte: a failure is an error frame carrying the same one line a local connect prints.
"""
from __future__ import annotations

from pathlib import Path

from .. import pipeline, transports
from . import prelude
from ..handoff import write_all
from ..outcome import FAILED, NOT_SERVED, connect_outcome
from ..model import JobEndpoint, ReadySession


def serve(request: dict) -> int:
    """One relayed session for the laptop; the exit status, as the ProxyCommand's."""
    announced: list[bool] = []

    def deliver(ready: ReadySession) -> None:
        _write(prelude.encode(prelude.Prelude(ready.host_key, ready.user, _credential(ready))))
        announced.append(True)
        pipeline.to_ssh(relay=True)(ready)

    status, line = connect_outcome({**request, "relay": True}, deliver=deliver,
                                   serves=_relayable)
    if status == NOT_SERVED:
        line = (f"{request['host']} is an EC2 job: its key pair stays on the access point, so "
                "ssh to it from there")
    if status != 0 and not announced:
        _write(prelude.encode_error(line.removeprefix("condor-job-proxy: ")))
    return FAILED if status != 0 else 0


def _relayable(endpoint: JobEndpoint) -> bool:
    """EC2 jobs log in with the job's key pair file, which must not leave the access point."""
    return not transports.load(endpoint.transport).login_key_stays_here


def _credential(ready: ReadySession) -> str:
    """The private key the job's sshd insists on (a pool's own ssh-to-job issues one per
    session); our starter let the laptop's public key in, so then there is none."""
    return Path(ready.issued_key).read_text() if ready.issued_key else ""


def _write(data: bytes) -> None:
    write_all(1, data)
