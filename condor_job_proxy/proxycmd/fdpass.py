"""Passing a connected socket between processes over a unix socket (SCM_RIGHTS).

Every handoff of ours uses it: the proxy to ssh (ProxyUseFdpass), the connect daemon to its
client, condor_ssh_to_job's offer to its ProxyCommand, HTCondor's tool to our grabber and the
grabber to the proxy. (The daemon's client, ``daemon/quick.py``, spells it out itself: it may
import nothing of the package.)
"""
from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator


def send(channel: socket.socket, sock: socket.socket | int, data: bytes = b"\0") -> None:
    """Send ``data`` with a copy of ``sock`` (a socket or a file descriptor) over ``channel``."""
    fd = sock if isinstance(sock, int) else sock.fileno()
    socket.send_fds(channel, [data], [fd])


def receive(channel: socket.socket, size: int = 1) -> tuple[bytes, socket.socket | None]:
    """(the data, the socket passed with it or None) of one message on ``channel``."""
    data, fds, _, _ = socket.recv_fds(channel, size, 1)
    return data, (socket.socket(fileno=fds[0]) if fds else None)


def fetch(path: str) -> socket.socket:
    """The connection offered on the unix socket ``path`` (OSError when none comes)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel, \
            socket_address(path) as address:
        channel.connect(address)
        _, sock = receive(channel, 16)
    if sock is None:
        raise OSError(f"{path} passed no connection")
    return sock


@contextlib.contextmanager
def socket_address(path: str) -> Iterator[str]:
    """``path``, or the same file through /proc/self/fd when it is longer than AF_UNIX allows.

    TMPDIR may be deep (108 bytes is the limit); the directory's fd names it in a few bytes.
    """
    if len(os.fsencode(path)) < 100:
        yield path
        return
    directory = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{directory}/{os.path.basename(path)}"
    finally:
        os.close(directory)
