"""The ProxyCommand's entry: ``condor-job-proxy ... connect HOST USER`` without click.

ssh runs ``connect`` for every connection (VS Code reconnects and scp loops pay it each time)
and importing click costs about as much as the rest of the connect path. The generated include
always spells the command the same way (``condor_job_proxy.proxycmd.options``), so that shape,
and only that, is parsed (``options.parse_connect``); anything else (other commands, ``--help``,
an unknown option) is the click CLI's.

What the connect path may not do itself (rewrite ssh_config: that is ``sshconfig``'s, a layer
above) comes in as ``after_user_mismatch``, a hook the command-line layer passes down.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import options

from .outcome import FAILED, connect_outcome

if TYPE_CHECKING:
    from .outcome import Hook


def run_connect(request: dict, after_user_mismatch: Hook | None = None) -> int:
    """Run the ProxyCommand; a failure is one line on stderr and 255 (a traceback with --debug).

    Run by the fast client when no connect daemon answered, it starts one for the next ssh;
    run by it with the daemon's refusal, it only shows that line through ssh (refusal.py).
    ``--via`` runs the laptop's side through an access point, ``--prelude`` the access
    point's side of it.
    """
    via, via_command, prelude = (request.get(key) for key in options.VIA_MODES)
    if prelude:
        from .via.access_point import serve
        return serve(request)
    if via:
        from .via.laptop import run
        return run(via, via_command, request)
    told = os.environ.pop("CONDOR_JOB_PROXY_REFUSAL", None)   # the fast client's, from the daemon
    daemon_socket = os.environ.pop("CONDOR_JOB_PROXY_START_DAEMON", None)
    deliver = _starting_daemon(daemon_socket, request) if daemon_socket else None
    status, line = (FAILED, told) if told else connect_outcome(
        request, deliver, after_user_mismatch=after_user_mismatch)
    if line:
        from .refusal import refuse
        refuse(line, request)
    return status


def _starting_daemon(daemon_socket: str, request: dict):
    """Delivery to ssh that first starts a connect daemon for the next ssh: before the
    session is handed over, since a relay (a client that takes no fd) lasts the session."""
    from .pipeline import to_ssh
    shared = {key: request[key] for key in options.DAEMON_SHARED}
    handover = to_ssh(request.get("relay", False))

    def deliver(ready) -> None:
        from .daemon.start import start_in_background
        start_in_background(daemon_socket, shared)
        handover(ready)
    return deliver
