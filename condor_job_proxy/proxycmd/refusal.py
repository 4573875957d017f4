"""A refusal that reaches ssh's own stderr: a throwaway SSH server whose banner is the line.

With ControlPersist on, ssh puts its ProxyCommand's stderr on /dev/null, so without a terminal
(VS Code, Ansible, git, cron) a refused connect would say only "proxy dialer did not pass back a
connection". ssh itself prints an SSH userauth banner, though. So instead of failing, the proxy
hands ssh a connection to a server of its own, run for that one connection: its host key is
made for it and pinned in the job's known_hosts for this connect only (the next connect pins
the job's real key again), its banner is the one line, and it offers no login method ssh knows,
so ssh ends with "Permission denied (refused@condor-job-proxy)" and exit status 255. paramiko is imported only on this failure path.
"""
from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from . import client_files

# The only login method offered: none that ssh knows, so it offers no key (and warns of none
# missing), and its "Permission denied (...)" line names who refused.
REFUSED_METHOD = "refused@condor-job-proxy"
SERVE_SECONDS = 30.0   # ssh reads a banner within a round trip; a client that stalls is dropped
_HOST = re.compile(r"[A-Za-z0-9_.-]{1,253}")   # what may go into known_hosts as a host pattern


def usable(host: object) -> bool:
    """Whether a refusal session can be pinned for ``host`` (a name ssh could have typed)."""
    return isinstance(host, str) and _HOST.fullmatch(host) is not None


def open_refusal(line: str, host: str, known_hosts: Path) -> tuple[socket.socket, socket.socket,
                                                                    object]:
    """(ssh's end, the server's end, the host key) of a refusal connection for ``host``, its
    key pinned in ``known_hosts``; ``serve`` then runs the server on the server's end."""
    import paramiko
    key = paramiko.ECDSAKey.generate(bits=256)
    client_files.pin(host, f"{key.get_name()} {key.get_base64()}", known_hosts,
                     "a refusal's throwaway key: the next connect pins the job's own")
    ours, theirs = socket.socketpair()
    return theirs, ours, key


def serve(sock: socket.socket, line: str, key: object) -> None:
    """Run the refusing server on ``sock`` until ssh gives up or SERVE_SECONDS pass."""
    import paramiko

    class Refuse(paramiko.ServerInterface):
        def get_banner(self) -> tuple[str, str]:
            return line + "\n", "en-US"

        def get_allowed_auths(self, username: str) -> str:
            return REFUSED_METHOD

    transport = paramiko.Transport(sock)
    transport.add_server_key(key)
    try:
        transport.start_server(server=Refuse())
        transport.join(SERVE_SECONDS)
    except (paramiko.SSHException, OSError, EOFError):
        pass
    finally:
        transport.close()
        sock.close()


def serve_detached(sock: socket.socket, peer: socket.socket, line: str, key: object) -> None:
    """``serve`` in a child of its own session, so that this process can exit at once: ssh
    waits for its ProxyCommand to exit before it speaks on the connection it was handed.
    The child lets go of ``peer`` (ssh's end), so it sees ssh hang up."""
    if os.fork() != 0:
        sock.close()
        return
    try:
        peer.close()
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        serve(sock, line, key)
    finally:
        os._exit(0)


def refuse(line: str, request: dict) -> bool:
    """Show ``line`` through ssh itself when ssh has hidden our stderr (ControlPersist); True if
    it went that way, False when the caller must report it as usual."""
    from . import handoff
    from .errors import stderr_hidden
    host = request.get("host")
    if os.name == "nt" or not stderr_hidden() or not usable(host):
        return False
    try:
        theirs, ours, key = open_refusal(line, host, client_files.known_hosts_file(
            host, Path(request["known_hosts"]) if request.get("known_hosts") else None))
    except Exception:   # noqa: BLE001 - no paramiko, a full disk: the usual report still works
        return False
    if not request.get("relay") and handoff.stdout_takes_fd():
        serve_detached(ours, theirs, line, key)
        handoff.pass_fd(theirs)
    else:
        import threading
        threading.Thread(target=serve, args=(ours, line, key), daemon=True).start()
        handoff.relay(theirs)
    return True
