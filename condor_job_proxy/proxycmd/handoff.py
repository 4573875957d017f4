"""Giving the connected socket to ssh: pass the fd (ProxyUseFdpass) or relay stdio.

Passing the fd takes Python out of the data path entirely. The relay is for callers that
cannot take an fd: every caller but OpenSSH with ProxyUseFdpass (``stdout_takes_fd``). It copies with read/write: splice(2) from the socket into ssh's pipe was
tried and stalled ssh's banner exchange here (ssh read one byte, then saw no more).
"""
from __future__ import annotations

import os
import socket
import stat
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

from . import fdpass

CHUNK = 64 * 1024   # measured here: 64 KiB beats 1 MiB for this relay


def stdout_takes_fd() -> bool:
    """Whether OpenSSH with ProxyUseFdpass runs us: it makes one socketpair and gives that one
    socket as both stdin and stdout (sshconnect.c). A socket as stdout alone is no sign: Node's
    child_process.spawn (and so VSCodium's open-remote-ssh) gives each stream a socketpair of
    its own and reads bytes, throwing a passed fd away; such callers, and pipes, get the relay.
    quick.c and quick.py apply the same rule."""
    try:
        stdin, stdout = os.fstat(0), os.fstat(1)
    except OSError:
        return False
    return (stat.S_ISSOCK(stdout.st_mode)
            and (stdin.st_dev, stdin.st_ino) == (stdout.st_dev, stdout.st_ino))


def pass_fd(sock: socket.socket) -> None:
    """Send the connection to ssh over our stdout (SCM_RIGHTS) and let go of it."""
    channel = socket.socket(fileno=os.dup(1))
    try:
        fdpass.send(channel, sock)
    finally:
        channel.close()
        sock.close()


def relay(sock: socket.socket, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
    """Copy stdin -> sock and sock -> stdout until the job side closes."""
    upstream = threading.Thread(target=_pump_up, args=(stdin_fd, sock), daemon=True)
    upstream.start()
    pump(sock.fileno(), stdout_fd)


def _pump_up(stdin_fd: int, sock: socket.socket) -> None:
    pump(stdin_fd, sock.fileno())
    try:
        sock.shutdown(socket.SHUT_WR)   # ssh closed its side: tell sshd, keep reading replies
    except OSError:
        pass


def pump(source: int, sink: int) -> None:
    """Copy ``source`` to ``sink`` until end of file or an error on either side."""
    while True:
        try:
            data = os.read(source, CHUNK)
            if not data:
                return
            write_all(sink, data)
        except OSError:
            return


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is out (pipes and sockets take partial writes)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def relay_process(process: subprocess.Popen, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
    """Copy our stdin -> the process's stdin and its stdout -> ours (pipes: works on Windows)."""
    def upstream() -> None:
        pump(stdin_fd, process.stdin.fileno())
        process.stdin.close()   # ssh closed its side: let the process see the end
    threading.Thread(target=upstream, daemon=True).start()
    pump(process.stdout.fileno(), stdout_fd)
    process.wait()
