"""A refusal that reaches ssh's own stderr: a throwaway SSH server whose banner is the line.

With ControlPersist on, ssh puts its ProxyCommand's stderr on /dev/null, so without a terminal
(VS Code, Ansible, git, cron) a refused connect would say only "proxy dialer did not pass back a
connection". ssh itself prints an SSH userauth banner, though. So instead of failing, the proxy
hands ssh a connection to a server of its own, run for that one connection: its host key is
made for it and pinned in the job's known_hosts for this connect only (the next connect pins
the job's real key again), its banner is the one line, and it offers no login method ssh knows,
so ssh ends with "Permission denied (refused@condor-job-proxy)" and exit status 255.
OpenSSH that asked for a connection (ProxyUseFdpass) with our stderr shown (shared connections
off) gets the same server without the banner: the line is on stderr once, and a failed fd pass
would add "mm_receive_fd: recvmsg: expected received 1 got 0" and "proxy dialer did not pass
back a connection". paramiko is imported only on this failure path.
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


def serve(sock: socket.socket, line: str | None, key: object) -> None:
    """Run the refusing server on ``sock`` until ssh gives up or SERVE_SECONDS pass; its banner
    is ``line`` (None: no banner, the line went to a stderr ssh shows)."""
    import paramiko

    class Refuse(paramiko.ServerInterface):
        def get_banner(self) -> tuple[str | None, str | None]:
            return (line + "\n", "en-US") if line else (None, None)

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


def serve_detached(sock: socket.socket, peer: socket.socket, line: str | None,
                   key: object) -> None:
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


def refuse(line: str, request: dict) -> None:
    """Tell the user ``line``, exit status 255 to follow. On our stderr when ssh shows it; and
    whenever ssh hid that stderr (ControlPersist) or asked for a connection (an fd: failing
    to pass one adds OpenSSH's "mm_receive_fd" and "proxy dialer" lines), through a refusal
    server, whose banner carries the line only when our stderr is hidden. A relay with our
    stderr shown (paramiko, asyncssh, Node, OpenSSH without ProxyUseFdpass) gets the line
    alone: a library would check the throwaway host key and report that instead."""
    from . import handoff
    from .errors import report, stderr_hidden
    hidden = stderr_hidden()
    wants_fd = not request.get("relay") and handoff.stdout_takes_fd()
    host = request.get("host")
    if os.name == "nt" or not (hidden or wants_fd) or not usable(host):
        return report(line)
    try:
        theirs, ours, key = open_refusal(line, host, client_files.known_hosts_file(
            host, Path(request["known_hosts"]) if request.get("known_hosts") else None))
    except Exception:   # noqa: BLE001 - no paramiko, a full disk: the usual report still works
        return report(line)
    banner = line if hidden else None
    if not hidden:
        report(line)
    if wants_fd:
        serve_detached(ours, theirs, banner, key)
        handoff.pass_fd(theirs)
    else:
        import threading
        threading.Thread(target=serve, args=(ours, banner, key), daemon=True).start()
        handoff.relay(theirs)
