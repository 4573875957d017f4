"""Whether a session's unprivileged ``sshd -i`` can give it a terminal on this machine.

sshd hands a new pty to the ``tty`` group with ``chown``. Unprivileged, that works only if
devpts already creates ptys in that group (mounted with ``gid=5``), or the job user is in
the group, or there is no ``tty`` group at all. Elsewhere sshd dies at the chown and the
client hears only "Connection closed by remote host"; libnss-wrapper (which hides the group
from sshd) is the way around it without root. Found once, when the starter starts, so that
sessions can refuse a terminal cleanly and say why instead.
"""
from __future__ import annotations

import grp
import os
import socket
from pathlib import Path


def pts_needs_help() -> bool:
    """Whether an unprivileged sshd here would fail to hand a pty to the tty group."""
    if os.getuid() == 0:
        return False
    try:
        tty_gid = grp.getgrnam("tty").gr_gid
    except KeyError:
        return False          # sshd then keeps the pty in the user's own group, mode 0600
    if tty_gid == os.getgid() or tty_gid in os.getgroups():
        return False
    return _devpts_gid(default=tty_gid) != tty_gid


def no_terminal_reason() -> str:
    """One line for the user: why sessions here get no terminal, and the two ways to fix it."""
    try:
        tty_gid = grp.getgrnam("tty").gr_gid
    except KeyError:
        tty_gid = 5
    host = socket.gethostname()
    return (f"cannot give a terminal (ssh -t, interactive login) on {host}: /dev/pts is mounted "
            f"without gid={tty_gid} and libnss-wrapper is not installed; install libnss-wrapper "
            f"on that execute node, or mount devpts with gid={tty_gid}")


def _devpts_gid(default: int) -> int | None:
    """The gid= option of the /dev/pts mount this process sees (the last one mounted wins).

    ``default`` when the mounts cannot be read or show no /dev/pts: with nothing known to be
    wrong, sessions are offered terminals rather than refused them on a guess.
    """
    try:
        mounts = Path("/proc/self/mounts").read_text()
    except OSError:
        return default
    gid: int | None = default
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[1] == "/dev/pts":
            options = dict(option.partition("=")[::2] for option in fields[3].split(","))
            gid = int(options["gid"]) if options.get("gid", "").isdigit() else None
    return gid
