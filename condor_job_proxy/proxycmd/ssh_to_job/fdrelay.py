"""``python -m condor_job_proxy.proxycmd.ssh_to_job.fdrelay SOCKET``: condor_ssh_to_job's ProxyCommand.

The wrapper has already authenticated the session and holds its connection; it offers the
connection on a unix socket in its private session directory. This program fetches it and
hands it to ssh (``ProxyUseFdpass yes``), so a failure to set up the session is known, and
worded, before ssh ever starts. Kept to the standard library for a fast start.
"""
from __future__ import annotations

import sys

from ..fdpass import fetch
from ..handoff import pass_fd, relay, stdout_takes_fd


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m condor_job_proxy.proxycmd.ssh_to_job.fdrelay SOCKET", file=sys.stderr)
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
