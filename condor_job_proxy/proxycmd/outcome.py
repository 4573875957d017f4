"""One connect, run to its outcome: the exit status and the one line a failure is reported as.

Shared by the full proxy command (``condor_job_proxy.proxycmd.main``), the connect daemon and the
access point's side of ``--via``, which all deliver the session their own way.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import options

if TYPE_CHECKING:
    from collections.abc import Callable

    from .model import JobEndpoint, ReadySession
    from .pipeline import Opener

    Hook = Callable[[str | None], None]

FAILED = 255
NOT_SERVED = -1   # connect_outcome: the caller's ``serves`` turned the job's endpoint down


def connect_outcome(request: dict, deliver: Callable[[ReadySession], None] | None = None,
                    serves: Callable[[JobEndpoint], bool] | None = None,
                    after_user_mismatch: Hook | None = None,
                    opener: Opener | None = None) -> tuple[int, str]:
    """(exit status, line for stderr) of one connect. ``deliver`` takes the ready session
    instead of ssh's stdout; an endpoint ``serves`` turns down gives NOT_SERVED; ``opener``,
    if given, opens the session (the connect daemon's spares)."""
    from condor_job_proxy.common import paths

    from .connect import NotServed
    from .errors import one_line
    request = {key: value for key, value in request.items() if key not in options.VIA_MODES}
    debug = request.pop("debug", False)
    paths.use_dirs(request.pop("config_dir", None), request.pop("state_dir", None))
    try:
        if opener is not None:
            request["opener"] = opener
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
