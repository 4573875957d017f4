"""A keeper beside the starter, so that a starter killed by SIGKILL still takes its job with it.

While the starter lives, the job's processes are its descendants (it is their subreaper) and it
ends them itself, whatever signal asks it to. Killed outright, it can do nothing: its children go
to init, and only the process it started directly dies with it (``die_with_parent``). A job in
its own pid namespace keeps running then, since the namespace's first process is the child of
the one that created it and ignores every signal from outside but SIGKILL and SIGSTOP.

So before the job starts the starter leaves a small process outside its own tree (no job
process, nothing for accounting or suspension to touch) holding the read end of a pipe whose
only write end the starter keeps. However the starter ends, the kernel closes that end; the
keeper reads end-of-file, ends what the starter left running as the next starter's sweep would
(``leftovers.end_starter``: SIGKILL to a pid namespace's first process ends the whole namespace),
and exits. No privilege, no cgroup: a pipe, /proc and the job's mark in its environment.
"""
from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path

from . import leftovers

KEEPER_PID_FILE = "keeper.pid"   # in the starter's private directory
_PR_SET_NAME = 15
# The keeper ignores what its starter handles (a terminal's ^C, ^Z, a hangup): it follows the
# starter's end instead of its own.
_IGNORED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP,
            signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE)


def start(private: Path) -> int:
    """Leave a keeper for the starter whose private directory is ``private``; return the pipe's
    write end, which the starter keeps open (and never writes) until it exits.

    Call it before the starter becomes a subreaper and before any thread starts: the keeper is
    forked twice so that it re-parents away from the starter, out of the job's tree.
    """
    starter = os.getpid()
    read_end, write_end = os.pipe()   # both close on exec: no job process inherits them
    middle = os.fork()
    if middle == 0:
        try:
            os.close(write_end)
            if os.fork() == 0:
                _keep(read_end, private, starter)
        finally:
            os._exit(0)   # never back into the starter's code
    os.close(read_end)
    os.waitpid(middle, 0)
    return write_end


def _keep(read_end: int, private: Path, starter: int) -> None:
    for signum in _IGNORED:
        signal.signal(signum, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)   # stderr stays: the line below is the starter's last word
    os.close(null)
    _name(b"cjp-keeper")
    try:
        (private / KEEPER_PID_FILE).write_text(f"{os.getpid()}\n")
    except OSError:
        pass   # the starter has ended (and removed it) already: it is read below
    while os.read(read_end, 1):
        pass   # nothing is ever written: this returns only at end-of-file, the starter's end
    count = leftovers.end_starter(private)
    if count:
        from .stderr import log
        log(f"the starter (pid {starter}) was killed: its keeper ended the {count} job "
            "processes it left running")
    leftovers.remove(private)


def _name(name: bytes) -> None:
    """Show as cjp-keeper in ps and /proc/PID/comm (the command line stays the starter's)."""
    try:
        ctypes.CDLL(None).prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
    except (OSError, AttributeError):
        pass
