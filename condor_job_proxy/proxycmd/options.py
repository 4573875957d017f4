"""The ProxyCommand's command line, defined once.

``condor-job-proxy [GROUP OPTIONS] connect [CONNECT OPTIONS] HOST [USER]``: the click command
is built from these tables, the fast parser below (``parse_connect``: for ``proxycmd.main`` and the
connect daemon) reads them, and the daemon's relaunch writes its group options back from them.
"""
from __future__ import annotations

from typing import NamedTuple


class Option(NamedTuple):
    flag: str                  # as typed: --known-hosts
    key: str                   # the keyword it fills: known_hosts
    takes_value: bool
    help: str
    metavar: str = ""
    is_path: bool = False      # given to the connect core as a Path


GROUP = (
    Option("--queue", "queue", True, "Local queue directory (default: $CONDOR_JOB_PROXY_QUEUE, "
           "config.toml, or the state dir).", "DIR"),
    Option("--debug", "debug", False, "Show tracebacks instead of one-line errors."),
    Option("--config-dir", "config_dir", True, "Config directory (default: platformdirs'; the "
           "generated ProxyCommand names the one it was made with).", "DIR"),
    Option("--state-dir", "state_dir", True, "State directory (default: platformdirs').", "DIR"),
)
CONNECT = (
    Option("--relay", "relay", False, "Relay stdin/stdout instead of passing the socket."),
    Option("--identity", "identity", True, "Your job-access private key.", "KEY", True),
    Option("--known-hosts", "known_hosts", True,
           "The job's known_hosts file to pin the session host key in.", "FILE", True),
    Option("--job-identity", "job_identity", True, "The job's identity link, pointed at the key "
           "the job needs (EC2 key pair, a pool's session key).", "LINK", True),
    Option("--host-prefix", "prefix", True, "Job host names start with PREFIX (default: job-).",
           "PREFIX"),
    Option("--via", "via", True, "Reach the job through this access point, with your own ssh "
           "(a laptop outside the pool).", "[USER@]AP"),
    Option("--via-command", "via_command", True,
           "The command to run on the access point (default: condor-job-proxy).", "CMD"),
    Option("--prelude", "prelude", False, "With --relay: the access point's side of --via."),
    Option("--session-key", "session_key", True,
           "With --prelude: the laptop's public key, let into this session.", "PUBKEY"),
)
# Options that choose another side of the connect than ssh's own (``--via``).
VIA_MODES = ("via", "via_command", "prelude")
# What a connect daemon shares with every request it serves (the rest varies per request).
DAEMON_SHARED = ("queue", "config_dir", "state_dir")


def pick(*keys: str) -> tuple[Option, ...]:
    """The connect options with these keys, for other commands that take them (setup --via)."""
    return tuple(option for option in CONNECT if option.key in keys)


def group_argv(values: dict) -> list[str]:
    """The group options among ``DAEMON_SHARED`` that ``values`` sets, as a command line."""
    argv: list[str] = []
    for option in GROUP:
        if option.key in DAEMON_SHARED and values.get(option.key):
            argv += [option.flag, str(values[option.key])]
    return argv


def parse_connect(argv: list[str]) -> dict | None:
    """The keyword arguments for ``run_connect``, or None for anything click should handle."""
    request: dict = {option.key: False if not option.takes_value else None
                     for option in (*GROUP, *CONNECT)}
    args = iter(argv)
    for arg in args:
        if arg == "connect":
            break
        if not _take_option(arg, args, request, GROUP):
            return None
    else:
        return None
    positional = []
    for arg in args:
        if not arg.startswith("-"):
            positional.append(arg)
        elif not _take_option(arg, args, request, CONNECT):
            return None
    if len(positional) not in (1, 2):
        return None
    request["host"], request["user"] = (positional + [None])[:2]
    return request


def _take_option(arg: str, args, request: dict, table: tuple[Option, ...]) -> bool:
    """Record one option of ``table`` (with its value from ``args``); False for anything else."""
    option = next((option for option in table if option.flag == arg), None)
    if option is None:
        return False
    if not option.takes_value:
        request[option.key] = True
        return True
    request[option.key] = next(args, None)
    return request[option.key] is not None
