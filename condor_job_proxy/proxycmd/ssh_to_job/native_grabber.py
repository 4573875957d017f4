"""The program HTCondor's condor_ssh_to_job runs in place of ssh (``-ssh``), for htcondor-native.

The tool runs it as ``PROGRAM [extra words] -oUser=U -oIdentityFile=K ... -oProxyCommand='TOOL
-proxy DIR/fdpass' condor-job.HOST`` (or whatever the pool's ``SSH_TO_JOB_<name>_CMD`` says).
Instead of running ssh, it takes the job sshd's socket from the ``fdpass`` socket, reads the
session's client key and host key before the tool deletes them, and hands all of it to the
waiting ``condor-job-proxy connect`` over the unix socket named by ``--handoff``, then exits so
the tool can clean up. stdout is the tool's: nothing is ever written there.
"""
from __future__ import annotations

import json
import shlex
import socket
import sys

from .. import fdpass

HANDOFF = "--handoff="
# ssh options that take a value as the next word (from ssh(1)); the host is the first other word.
_VALUED = set("BbcDEeFIiJLlmOoPpQRSWw")


def parse(argv: list[str]) -> dict[str, str]:
    """The ssh-style options we need (lower-cased names), the host and our --handoff path."""
    found: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith(HANDOFF):
            found["handoff"] = arg[len(HANDOFF):]
        elif arg.startswith("-o"):
            value = arg[2:] or (argv[i + 1] if i + 1 < len(argv) else "")
            i += 0 if arg[2:] else 1
            name, _, rest = value.replace("=", " ", 1).partition(" ")
            found.setdefault(name.lower(), rest.strip())
        elif arg.startswith("-") and len(arg) == 2 and arg[1] in _VALUED:
            i += 1
        elif not arg.startswith("-") and "host" not in found:
            found["host"] = arg
        i += 1
    return found


def fdpass_path(proxy_command: str) -> str:
    words = shlex.split(proxy_command)
    if "-proxy" not in words or words.index("-proxy") + 1 >= len(words):
        raise ValueError(f"no -proxy socket in the ProxyCommand {proxy_command!r}")
    return words[words.index("-proxy") + 1]


def host_key(known_hosts: str) -> str:
    """The session sshd's key from the tool's known_hosts (``condor-job.HOST TYPE BASE64``)."""
    with open(known_hosts) as file:
        for line in file:
            fields = line.split()
            if len(fields) >= 3 and not line.startswith("#"):
                return f"{fields[1]} {fields[2]}"
    raise ValueError(f"no host key in {known_hosts}")


def main(argv: list[str]) -> int:
    try:
        options = parse(argv)
        missing = [name for name in ("handoff", "user", "identityfile", "userknownhostsfile",
                                     "proxycommand") if not options.get(name)]
        if missing:
            raise ValueError(f"condor_ssh_to_job gave no {', '.join(missing)}")
        with open(options["identityfile"]) as file:
            key = file.read()
        message = json.dumps({"user": options["user"], "host_key":
                              host_key(options["userknownhostsfile"]), "key": key,
                              "execute_host": options.get("host", "")}).encode()
        sshd = fdpass.fetch(fdpass_path(options["proxycommand"]))
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as handoff:
            handoff.connect(options["handoff"])
            fdpass.send(handoff, sshd, message)
            handoff.recv(1)   # the proxy holds the socket now: the tool may clean up
        return 0
    except (OSError, ValueError) as err:
        print(f"condor-job-proxy grabber: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
