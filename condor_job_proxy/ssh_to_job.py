"""``condor_ssh_to_job``: HTCondor's single-dash command line, parsed as HTCondor parses it.

Options come first, then the job id, then the remote command (everything after the job id
belongs to ssh's program, so ``-ssh scp 32 remote:out.dat .`` works). Like HTCondor's tools,
an option may be abbreviated while unambiguous and may take two dashes. rsync's remote-shell
call (``condor_ssh_to_job [-l USER] [-p PORT] 32.0 rsync --server ...``) is accepted: the job
decides the login user, so those ssh options are ignored. The work is in
``condor_job_proxy.proxycmd.ssh_to_job.command``.
"""
from __future__ import annotations

import os
import sys

from condor_job_proxy.proxycmd.ssh_to_job.command import (TOOL, Request, SetupFailed, run,
                                                          split_arguments)
from condor_job_proxy.common.about import version_line
from condor_job_proxy.common.jobid import BadJobId, parse_job_id

USAGE_ERROR = 2
USAGE = f"""\
Usage: {TOOL} [options] <job id> [command]
\t<job id> is cluster, cluster.proc or cluster.proc.node (a bare cluster means proc 0)
\t[options] are
\t-help                 Display this message
\t-version              Display the version (condor-job-proxy's)
\t-debug                Show extra debugging info
\t-name <schedd-name>   Connect to job queued in specified schedd
\t-pool <pool>          Use specified pool to find schedd
\t-ssh <alt ssh command> Alternate ssh program to run (e.g. sftp, scp)
\t                      (a host name in scp's arguments is a placeholder for the job)
\t-keygen-options <opts> Options for ssh-keygen making this session's key
\t-shells <shell1,shell2,...> Shells to try, in order (default: $SHELL), then /bin/sh
\t-auto-retry           Keep trying while the job is not running yet
\t-remove-on-interrupt  Remove the job if interrupted (Ctrl-C) or terminated
\t-X                    Enable X11 forwarding
\t-x                    Disable X11 forwarding
\tIf no command is given, an interactive shell is started.
"""
# name -> takes a value; a prefix selects an option when it matches exactly one.
_OPTIONS = {"help": False, "version": False, "debug": False, "name": True, "pool": True, "ssh": True,
            "keygen-options": True, "shells": True, "auto-retry": False,
            "remove-on-interrupt": False}
_SSH_OPTIONS_WITH_VALUE = ("-l", "-p")   # what rsync may put before the host


class UsageError(Exception):
    pass


def parse(argv: list[str]) -> Request | str:
    """The request, or the text -help or -version asks for; UsageError (exit 2) for a bad
    command line."""
    values: dict[str, object] = {}
    args = list(argv)
    while args and args[0].startswith("-") and args[0] != "-":
        arg = args.pop(0)
        if arg in ("-X", "-x"):
            values["x11"] = arg == "-X"
            continue
        if arg in _SSH_OPTIONS_WITH_VALUE:
            value = _value(arg, args)
            if arg == "-l":
                values["login"] = value
            continue
        name = _option(arg)
        if name == "help":
            return USAGE
        if name == "version":
            return version_line(TOOL) + "\n"
        values[name] = _value(arg, args) if _OPTIONS[name] else True
    for quoted in ("ssh", "keygen-options"):
        if quoted in values:
            split_arguments(str(values[quoted]))   # a bad quote is a usage error, found now
    if not args:
        raise UsageError("ERROR: You must specify a job!")
    job_text, command = args[0], args[1:]
    try:
        job = parse_job_id(job_text)
    except BadJobId:
        raise UsageError(f"Invalid job id: {job_text}") from None
    return Request(
        job=job, command=command, ssh_command=str(values.get("ssh", "ssh")),
        keygen_options=values.get("keygen-options"), shells=_shells(values.get("shells")),
        auto_retry=bool(values.get("auto-retry")),
        remove_on_interrupt=bool(values.get("remove-on-interrupt")), x11=values.get("x11"),
        debug=bool(values.get("debug")), schedd=values.get("name"), pool=values.get("pool"),
        login=values.get("login"), argv=list(argv))


def _option(arg: str) -> str:
    word = arg.lstrip("-")
    if word in _OPTIONS:
        return word
    matches = [name for name in _OPTIONS if word and name.startswith(word)]
    if len(matches) != 1 or arg.startswith("---"):
        raise UsageError(f"Unrecognized argument: {arg}")
    return matches[0]


def _value(arg: str, args: list[str]) -> str:
    if not args:
        raise UsageError(f"{arg} requires an argument")
    return args.pop(0)


def _shells(text: object) -> list[str]:
    """-shells a,b,c; without it, the client's $SHELL (HTCondor's default)."""
    if isinstance(text, str):
        return [shell for shell in text.split(",") if shell]
    shell = os.environ.get("SHELL", "")
    return [shell] if shell else []


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        request = parse(argv)
    except (UsageError, SetupFailed) as err:
        print(err, file=sys.stderr)
        return USAGE_ERROR
    if isinstance(request, str):
        print(request, end="")
        return 0
    return run(request)


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
