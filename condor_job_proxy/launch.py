"""Start-up of ``condor-job-proxy``: ssh's ProxyCommand skips click, everything else uses it.

ssh runs ``connect`` for every connection (VS Code reconnects and scp loops pay it each time)
and importing click costs about as much as the rest of the connect path. The generated include
always spells the command the same way, so that shape, and only that, is parsed here; anything
else (other commands, ``--help``, an option this parser does not know) goes to the click CLI,
which stays the definition of the command line.
"""
from __future__ import annotations

import sys

FAILED = 255
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
    """``[--queue DIR] [--debug] connect [--relay] [--identity K] [--known-hosts F]
    [--job-identity J] [--host-prefix P] HOST [USER]`` as keyword arguments for
    ``run_connect``, or None for anything click should handle."""
    request: dict = {"queue": None, "debug": False, "relay": False, "identity": None,
                     "known_hosts": None, "job_identity": None, "prefix": None,
                     "config_dir": None, "state_dir": None}
    args = iter(argv)
    for arg in args:
        if arg == "connect":
            break
        if arg == "--debug":
            request["debug"] = True
        elif arg in _GROUP_OPTIONS:
            request[_GROUP_OPTIONS[arg]] = next(args, None)
            if request[_GROUP_OPTIONS[arg]] is None:
                return None
        else:
            return None
    else:
        return None
    positional = []
    for arg in args:
        if arg == "--relay":
            request["relay"] = True
        elif arg in _VALUE_OPTIONS:
            request[_VALUE_OPTIONS[arg]] = next(args, None)
            if request[_VALUE_OPTIONS[arg]] is None:
                return None
        elif arg.startswith("-"):
            return None
        else:
            positional.append(arg)
    if len(positional) not in (1, 2):
        return None
    request["host"], request["user"] = (positional + [None])[:2]
    return request


def run_connect(request: dict) -> int:
    """Run the ProxyCommand; a failure is one line on stderr and 255 (a traceback with --debug)."""
    from proxycmd.errors import ProxyError
    from starter import paths
    debug = request.pop("debug")
    paths.use_dirs(request.pop("config_dir"), request.pop("state_dir"))
    try:
        connect_and_remember(**request)
        return 0
    except KeyboardInterrupt:
        return FAILED
    except (ProxyError, OSError, ValueError) as err:
        if debug:
            raise
        message = str(err)
    except Exception as err:   # noqa: BLE001 - the contract is one line, never a traceback
        if debug:
            raise
        message = f"internal error: {type(err).__name__}: {err}"
    print(f"condor-job-proxy: {message}", file=sys.stderr)
    return FAILED


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
