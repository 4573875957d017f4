"""Starting a connect daemon from the full proxy command, which ran because none answered."""
from __future__ import annotations

import sys

from .. import options


def start_in_background(socket_path: str, shared: dict) -> None:
    """Start a daemon detached from this proxy (ssh waits for the proxy to exit, not for it),
    with the proxy's environment (run_connect has taken the client's note out of it). Not
    without cryptography: a daemon that cannot sign would hand every starter job back."""
    import importlib.util
    import subprocess
    if importlib.util.find_spec("cryptography") is None:
        return
    argv = [sys.executable, "-m", "condor_job_proxy", *options.group_argv(shared)]
    subprocess.Popen([*argv, "daemon", "--socket", socket_path],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
                     cwd="/")
