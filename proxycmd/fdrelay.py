"""``python -m proxycmd.fdrelay SOCKET``: condor_ssh_to_job's ProxyCommand.

The wrapper has already authenticated the session and holds its connection; it offers the
connection on a unix socket in its private session directory. This program fetches it and
hands it to ssh (``ProxyUseFdpass yes``), so a failure to set up the session is known, and
worded, before ssh ever starts. Kept to the standard library for a fast start.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator

from .handoff import pass_fd, relay, stdout_takes_fd


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


def fetch(path: str) -> socket.socket:
    """The connection offered on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel, \
            socket_address(path) as address:
        channel.connect(address)
        _, fds, _, _ = socket.recv_fds(channel, 1, 1)
    if not fds:
        raise OSError("no connection was offered")
    return socket.socket(fileno=fds[0])


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m proxycmd.fdrelay SOCKET", file=sys.stderr)
        return 255
    try:
        sock = fetch(argv[0])
    except OSError as err:
        print(f"condor_ssh_to_job: cannot fetch the session from {argv[0]}: "
              f"{err.strerror or err}", file=sys.stderr)
        return 255
    if stdout_takes_fd():
        pass_fd(sock)
    else:
        relay(sock)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
