"""A session inside the job's container: the host's sshd, run in the job's namespaces.

The container may have neither sshd nor a shell, so the session runs the host's sshd (and,
for its own setup, the host's sh), but with the container's root directory: ``starter/enter.py``
joins the job's namespaces, nests a user namespace in which the job's uid is itself again (an
sshd that is uid 0 would want the host's root: a privilege-separation user, setgroups), and
executes sshd through the host's dynamic loader.

Inside the container the host's files are out of reach by name. They are reached through the
session's directory, which the session's *anchor* (a sleeping process that ``enter`` forks
beside sshd, in the job's pid namespace, ended after sshd) keeps as its working directory: ``/proc/<anchor>/cwd/...`` leads there from any
process of the session, and relative symlinks in the starter's directory (``host/``) lead on
from there to the host's loader, libraries, sshd, sftp-server and sh. sshd runs the host's
sftp-server (through the session's login shell), so sftp and scp work in the container's files; forwards connect from the job's network
namespace, since sshd is in it.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from .container import Container
from ..common.files import write_private
from .session_files import SESSION_ENV, SSHD_CONFIG_TEMPLATE, environment_script
from .processes import STANDARD_PATH
from .sshd import NSS_WRAPPER_PLACES, first_place

if TYPE_CHECKING:
    from .session_files import JobContext

HOST_LINKS = "host"                  # in the starter's directory: links to the host's files
SSHD_CONFIG = "sshd_config_container"
# The per-session files enter writes into the session's directory.
PASSWD, GROUP, SHELL, ENVIRONMENT = "passwd", "group", "shell", "job_env.sh"
_PREPARING = threading.Lock()   # sessions start on the server's threads
# sftp runs the host's sftp-server, a process of its own (through the session's login shell),
# not sshd's internal-sftp: that one inherits libnss-wrapper's cached passwd stream, whose
# descriptor sshd closed and the first directory sftp opens reuses; the wrapper's next
# look-up (a listing's owner names) rewinds it and every name is listed twice.
_INTERNAL_SFTP = "Subsystem sftp internal-sftp\n"


def helper_command(context: JobContext, session_dir: Path, container: Container,
                   pids_inside: list[int], shells: list[str]) -> tuple[list[str], dict[str, str]]:
    """``python -m <this package>.enter SPEC`` for one session and its environment (its
    files are prepared here first). Run it in the session's directory: ``python -m`` puts its
    cwd first in sys.path."""
    with _PREPARING:
        _prepare(context)
    host = context.host
    spec = {"pid": container.pid, "session": str(session_dir), "job": context.job,
            "name": host.user_name, "group": host.group_line,
            "no_terminal": bool(host.no_terminal), "pids": " ".join(map(str, pids_inside)),
            "shells": shells}
    top = Path(__file__).parents[__package__.count(".") + 1]   # where our packages are
    return ([sys.executable, "-m", f"{__package__}.enter", json.dumps(spec)],
            {"PATH": STANDARD_PATH, "PYTHONPATH": str(top)})


def _prepare(context: JobContext) -> None:
    """Once per starter: the links to the host's files and sshd's config."""
    links = context.directory / HOST_LINKS
    if links.exists():
        return
    staging = context.directory / (HOST_LINKS + ".new")
    staging.mkdir(mode=0o700)
    base = os.path.realpath(links)
    sftp_server = context.host.sftp_server or "/usr/lib/openssh/sftp-server"
    for name, target in _host_files(context.host.sshd or "sshd", sftp_server).items():
        os.symlink(os.path.relpath(os.path.realpath(target), base), staging / name)
    no_terminal = context.host.no_terminal
    config = SSHD_CONFIG_TEMPLATE.format(
        dir="/proc/self/cwd/..", permit_tty="no" if no_terminal else "yes", banner="none")
    write_private(context.directory / SSHD_CONFIG, config.replace(_INTERNAL_SFTP, ""), 0o600)
    staging.rename(links)


@cache
def _host_files(sshd: str, sftp_server: str) -> dict[str, str]:
    """The loader, sshd, sftp-server, sh, libnss-wrapper and the directories of their
    libraries."""
    sh = os.path.realpath("/bin/sh")
    wrapper = first_place(NSS_WRAPPER_PLACES) or ""
    files = {"sshd": sshd, "sftp-server": sftp_server, "sh": sh, "nss_wrapper.so": wrapper}
    loader, directories = None, []
    for program in (sshd, sftp_server, sh, wrapper):
        listing = subprocess.run(["ldd", program], capture_output=True, text=True).stdout
        for words in map(str.split, listing.splitlines()):
            if len(words) > 2 and words[1] == "=>" and words[2].startswith("/"):
                directory = os.path.dirname(os.path.realpath(words[2]))
                if directory not in directories:
                    directories.append(directory)
            elif words and words[0].startswith("/"):
                loader = loader or words[0]
    files["ldso"] = loader or "/lib64/ld-linux-x86-64.so.2"
    files.update({f"lib{n}": directory for n, directory in enumerate(directories)})
    return files


def sshd_argv(anchor: str, session_dir: str, pids_inside: str, no_terminal: bool) -> list[str]:
    """The loader running sshd, from inside (``anchor`` is ``/proc/<pid>/cwd``)."""
    here, there = "/proc/self/cwd/../" + HOST_LINKS, f"{anchor}/../{HOST_LINKS}"
    libraries = ":".join(f"{here}/{name}" for name in _library_links(here))
    inside_libraries = libraries.replace(here, there)
    setenv = " ".join(f'"{entry}"' for entry in (
        f"LD_LIBRARY_PATH={inside_libraries}", f"{SESSION_ENV}={session_dir}",
        f"_CONDOR_JOB_PIDS={pids_inside}"))
    host = f"{anchor}/../{HOST_LINKS}"
    sftp = (f"NSS_WRAPPER_PASSWD={anchor}/{PASSWD} NSS_WRAPPER_GROUP={anchor}/{GROUP} "
            f"{host}/ldso --library-path {inside_libraries} --preload {host}/nss_wrapper.so "
            f"{host}/sftp-server")
    return [f"{here}/ldso", "--library-path", libraries, "--preload", f"{here}/nss_wrapper.so",
            f"{here}/sshd", "-i", "-e", "-f", f"/proc/self/cwd/../{SSHD_CONFIG}",
            "-o", f"AuthorizedKeysFile {anchor}/authorized_keys", "-o", f"SetEnv {setenv}",
            "-o", f"Subsystem sftp {sftp}",
            *(["-o", f"Banner {anchor}/../banner"] if no_terminal else [])]


def _library_links(here: str) -> list[str]:
    return sorted((name for name in os.listdir(here) if name.startswith("lib")),
                  key=lambda name: int(name[3:]))


def session_files(anchor: str, name: str, uid: int, gid: int, group_line: str, cwd: str,
                  environment: dict[str, str], job: str, shells: list[str]) -> dict[str, str]:
    """The session's passwd (its home is the job's working directory, its shell the host's
    sh running ``shell``), group, setup script and the container's environment."""
    return {
        PASSWD: f"{name}:x:{uid}:{gid}:{name}:{cwd}:{anchor}/{SHELL}\n",
        GROUP: group_line + "\n",
        ENVIRONMENT: environment_script(environment),
        SHELL: _setup_script(anchor, job, shells, cwd),
    }


def _setup_script(anchor: str, job: str, shells: list[str], cwd: str) -> str:
    """What sshd runs as the login shell: the host's sh, in the container. It gives the
    session the container's environment and runs the container's shell; in a container
    without one, this sh reads the command line itself. A HOME the container lacks (the
    host's, passed on by ``unshare``) or cannot write becomes the job's working directory,
    as in sessions beside a job."""
    q = shlex.quote
    candidates = " ".join(map(q, [*shells, "/bin/bash", "/bin/sh", "/bin/ash"]))
    welcome = q(f"Welcome to job {job}, inside its container!")
    no_shell = q(f"condor-job-proxy: job {job}'s container has no shell: give a command "
                 f"(ssh job-{job} CMD)")
    return f"""\
#!{anchor}/../{HOST_LINKS}/ldso {anchor}/../{HOST_LINKS}/sh
# Session setup for job {job}, inside its container: sshd runs this as the login shell.
unset LD_LIBRARY_PATH
cjp_pids=$_CONDOR_JOB_PIDS cjp_session=${SESSION_ENV}
. {anchor}/{ENVIRONMENT}
export _CONDOR_JOB_PIDS="$cjp_pids" {SESSION_ENV}="$cjp_session"
unset cjp_pids cjp_session
if [ -z "$HOME" ] || [ ! -d "$HOME" ] || [ ! -w "$HOME" ]; then HOME={q(cwd)}; fi
export HOME
SHELL=
for candidate in {candidates}; do
    if [ -x "$candidate" ]; then SHELL=$candidate; break; fi
done
if [ "$1" = -c ]; then
    if [ -n "$SHELL" ]; then export SHELL; exec "$SHELL" -c "$2"; fi
    eval "$2"
    exit
fi
if [ -z "$SHELL" ]; then printf '%s\\n' {no_shell} >&2; exit 1; fi
export SHELL
if [ -t 0 ]; then
    printf '%s\\nYour condor job is running with pid(s) %s.\\n' {welcome} "$_CONDOR_JOB_PIDS"
    exec "$SHELL" -i
fi
exec "$SHELL"
"""
