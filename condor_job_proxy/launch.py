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
_VALUE_OPTIONS = {"--identity": "identity", "--known-hosts": "known_hosts"}


def main() -> None:
    """The console script and ``python -m condor_job_proxy``."""
    request = parse_connect(sys.argv[1:])
    if request is None:
        from .cli import main as click_main
        click_main()
    else:
        sys.exit(run_connect(request))


def parse_connect(argv: list[str]) -> dict | None:
    """``[--queue DIR] [--debug] connect [--relay] [--identity K] [--known-hosts F] HOST [USER]``
    as keyword arguments for ``run_connect``, or None for anything click should handle."""
    request: dict = {"queue": None, "debug": False, "relay": False, "identity": None,
                     "known_hosts": None}
    args = iter(argv)
    for arg in args:
        if arg == "connect":
            break
        if arg == "--debug":
            request["debug"] = True
        elif arg == "--queue":
            request["queue"] = next(args, None)
            if request["queue"] is None:
                return None
        elif arg.startswith("--queue="):
            request["queue"] = arg[len("--queue="):]
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
    from pathlib import Path

    from proxycmd.connect import connect
    from proxycmd.errors import ProxyError
    debug = request["debug"]
    try:
        connect(request["host"], request["user"], relay=request["relay"], queue=request["queue"],
                identity=Path(request["identity"]) if request["identity"] else None,
                known_hosts=Path(request["known_hosts"]) if request["known_hosts"] else None)
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
