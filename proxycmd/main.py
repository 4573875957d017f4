"""The ProxyCommand's entry: ``condor-job-proxy ... connect HOST USER`` without click.

ssh runs ``connect`` for every connection (VS Code reconnects and scp loops pay it each time)
and importing click costs about as much as the rest of the connect path. The generated include
always spells the command the same way (``proxycmd.options``), so that shape, and only that, is
parsed here; anything else (other commands, ``--help``, an unknown option) is the click CLI's.

What the connect path may not do itself (rewrite ssh_config: that is ``sshconfig``'s, a layer
above) comes in as ``after_user_mismatch``, a hook the command-line layer passes down.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import options

if TYPE_CHECKING:
    from collections.abc import Callable

    from .model import JobEndpoint, ReadySession

    Hook = Callable[[str | None], None]

FAILED = 255
NOT_SERVED = -1   # connect_outcome: the caller's ``serves`` turned the job's endpoint down


def parse_connect(argv: list[str]) -> dict | None:
    """The keyword arguments for ``run_connect``, or None for anything click should handle."""
    request: dict = {option.key: False if not option.takes_value else None
                     for option in (*options.GROUP, *options.CONNECT)}
    args = iter(argv)
    for arg in args:
        if arg == "connect":
            break
        if not _take_option(arg, args, request, options.GROUP):
            return None
    else:
        return None
    positional = []
    for arg in args:
        if not arg.startswith("-"):
            positional.append(arg)
        elif not _take_option(arg, args, request, options.CONNECT):
            return None
    if len(positional) not in (1, 2):
        return None
    request["host"], request["user"] = (positional + [None])[:2]
    return request


def _take_option(arg: str, args, request: dict, table: tuple[options.Option, ...]) -> bool:
    """Record one option of ``table`` (with its value from ``args``); False for anything else."""
    option = next((option for option in table if option.flag == arg), None)
    if option is None:
        return False
    if not option.takes_value:
        request[option.key] = True
        return True
    request[option.key] = next(args, None)
    return request[option.key] is not None


def run_connect(request: dict, after_user_mismatch: Hook | None = None) -> int:
    """Run the ProxyCommand; a failure is one line on stderr and 255 (a traceback with --debug).

    Run by the fast client when no connect daemon answered, it starts one for the next ssh.
    """
    daemon_socket = os.environ.pop("CONDOR_JOB_PROXY_START_DAEMON", None)
    shared = {key: request[key] for key in options.DAEMON_SHARED}
    status, line = connect_outcome(request, after_user_mismatch=after_user_mismatch)
    if line:
        from .errors import report
        report(line)
    if status == 0 and daemon_socket:
        from .daemon.start import start_in_background
        start_in_background(daemon_socket, shared)
    return status


def connect_outcome(request: dict, deliver: Callable[[ReadySession], None] | None = None,
                    serves: Callable[[JobEndpoint], bool] | None = None,
                    after_user_mismatch: Hook | None = None) -> tuple[int, str]:
    """(exit status, line for stderr) of one connect. ``deliver`` takes the ready session
    instead of ssh's stdout; an endpoint ``serves`` turns down gives NOT_SERVED."""
    from starter import paths

    from .connect import NotServed
    from .errors import ProxyError, one_line
    request = dict(request)
    debug = request.pop("debug", False)
    paths.use_dirs(request.pop("config_dir", None), request.pop("state_dir", None))
    try:
        connect_and_remember(**request, deliver=deliver, serves=serves,
                             after_user_mismatch=after_user_mismatch)
        return 0, ""
    except NotServed:
        return NOT_SERVED, ""
    except KeyboardInterrupt:
        return FAILED, ""
    except Exception as err:   # noqa: BLE001 - the contract is one line, never a traceback
        if debug:
            raise
        return FAILED, one_line(err)


def connect_and_remember(host: str, user: str | None, queue: str | None,
                         after_user_mismatch: Hook | None = None, **given) -> None:
    """The ProxyCommand's work; when ssh used the wrong login name, ``after_user_mismatch``
    (the include's refresh) runs, so the next ``ssh job-N.P`` logs in as the job's user."""
    from pathlib import Path

    from .connect import connect
    from .errors import ProxyError, UserMismatch
    for option in options.CONNECT:
        if option.is_path and given.get(option.key):
            given[option.key] = Path(given[option.key])
    try:
        connect(host, user, queue=queue, **given)
    except UserMismatch:
        if after_user_mismatch is not None:
            try:
                after_user_mismatch(queue)
            except (ProxyError, OSError, ValueError):
                pass   # the one-line error already says how to log in; refresh is a convenience
        raise
