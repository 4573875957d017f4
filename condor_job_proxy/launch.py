"""Start-up of ``condor-job-proxy``: ssh's ProxyCommand skips click, everything else uses it.

ssh runs ``connect`` for every connection (VS Code reconnects and scp loops pay it each time)
and importing click costs about as much as the rest of the connect path. The generated include
always spells the command the same way, so that shape, and only that, is parsed here; anything
else (other commands, ``--help``, an option this parser does not know) goes to the click CLI,
which stays the definition of the command line.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from socket import socket

    from proxycmd.resolvers import JobEndpoint

FAILED = 255
NOT_SERVED = -1   # connect_outcome: the caller's ``serves`` turned the job's endpoint down
_VALUE_OPTIONS = {"--identity": "identity", "--known-hosts": "known_hosts",
                  "--job-identity": "job_identity", "--host-prefix": "prefix"}
_PATH_OPTIONS = ("identity", "known_hosts", "job_identity")
_GROUP_OPTIONS = {"--queue": "queue", "--config-dir": "config_dir", "--state-dir": "state_dir"}


def main() -> None:
    """The console script and ``python -m condor_job_proxy``."""
    request = parse_connect(sys.argv[1:])
    if request is None:
        from .cli import main as click_main
        click_main()
    else:
        sys.exit(run_connect(request))


def parse_connect(argv: list[str]) -> dict | None:
    """``[--queue DIR] [--config-dir D] [--state-dir D] [--debug] connect [--relay]
    [--identity K] [--known-hosts F] [--job-identity J] [--host-prefix P] HOST [USER]`` as
    keyword arguments for ``run_connect``, or None for anything click should handle."""
    request: dict = {"debug": False, "relay": False,
                     **dict.fromkeys([*_GROUP_OPTIONS.values(), *_VALUE_OPTIONS.values()])}
    args = iter(argv)
    for arg in args:
        if arg == "connect":
            break
        if not _take_option(arg, args, request, {"--debug": "debug"}, _GROUP_OPTIONS):
            return None
    else:
        return None
    positional = []
    for arg in args:
        if not arg.startswith("-"):
            positional.append(arg)
        elif not _take_option(arg, args, request, {"--relay": "relay"}, _VALUE_OPTIONS):
            return None
    if len(positional) not in (1, 2):
        return None
    request["host"], request["user"] = (positional + [None])[:2]
    return request


def _take_option(arg: str, args, request: dict, flags: dict, valued: dict) -> bool:
    """Record one known flag or option-with-value from ``args``; False for anything else."""
    if arg in flags:
        request[flags[arg]] = True
        return True
    if arg in valued:
        request[valued[arg]] = next(args, None)
        return request[valued[arg]] is not None
    return False


def run_connect(request: dict) -> int:
    """Run the ProxyCommand; a failure is one line on stderr and 255 (a traceback with --debug).

    Run by the fast client when no connect daemon answered, it starts one for the next ssh.
    """
    import os
    daemon_socket = os.environ.pop("CONDOR_JOB_PROXY_START_DAEMON", None)
    options = {key: request[key] for key in _GROUP_OPTIONS.values()}
    status, line = connect_outcome(request)
    if line:
        from proxycmd.errors import report
        report(line)
    if status == 0 and daemon_socket:
        from .daemon import start_in_background
        start_in_background(daemon_socket, options)
    return status


def connect_outcome(request: dict, deliver: Callable[[socket, str], None] | None = None,
                    serves: Callable[[JobEndpoint], bool] | None = None) -> tuple[int, str]:
    """(exit status, line for stderr) of one connect. ``deliver`` takes the connected socket
    and any line for the user instead of ssh's stdout; an endpoint ``serves`` turns down
    gives NOT_SERVED."""
    from proxycmd.connect import NotServed
    from proxycmd.errors import ProxyError
    from starter import paths
    debug = request.pop("debug", False)
    paths.use_dirs(request.pop("config_dir", None), request.pop("state_dir", None))
    try:
        connect_and_remember(**request, deliver=deliver, serves=serves)
        return 0, ""
    except NotServed:
        return NOT_SERVED, ""
    except KeyboardInterrupt:
        return FAILED, ""
    except (ProxyError, OSError, ValueError) as err:
        if debug:
            raise
        message = str(err)
    except Exception as err:   # noqa: BLE001 - the contract is one line, never a traceback
        if debug:
            raise
        message = f"internal error: {type(err).__name__}: {err}"
    return FAILED, f"condor-job-proxy: {message}"


def connect_and_remember(host: str, user: str | None, queue: str | None, **options) -> None:
    """The ProxyCommand's work; when ssh used the wrong login name, the include is refreshed
    so that the next ``ssh job-N.P`` logs in as the job's user."""
    from pathlib import Path

    from proxycmd.connect import connect
    from proxycmd.errors import ProxyError, UserMismatch
    for name in _PATH_OPTIONS:
        if options.get(name):
            options[name] = Path(options[name])
    try:
        connect(host, user, queue=queue, **options)
    except UserMismatch:
        from proxycmd.resolvers import default_resolver
        from sshconfig import install
        try:
            install.include_change(default_resolver(queue), queue).apply()
        except (ProxyError, OSError, ValueError):
            pass   # the one-line error already says how to log in; refresh is a convenience
        raise
