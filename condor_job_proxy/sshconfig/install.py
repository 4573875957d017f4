"""setup / refresh / uninstall as lists of file changes, so each can be shown as a diff first."""
from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from condor_job_proxy.proxycmd.ondemand import interactive
from condor_job_proxy.proxycmd import client_files
from condor_job_proxy.proxycmd.daemon import build
from condor_job_proxy.proxycmd.via.hop import Hop, list_jobs
from condor_job_proxy.proxycmd.model import JobSummary
from condor_job_proxy.proxycmd.resolvers import BaseResolver
from condor_job_proxy.common import paths
from condor_job_proxy.common.settings import Settings

from . import control, include, managed, readers
from .via import via_file


@dataclass(frozen=True)
class Change:
    """One file's old and new content; None means the file does not (or will not) exist."""
    path: Path
    old: str | None
    new: str | None
    remove_directory: bool = False     # with new=None: also its directory, if left empty

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def diff(self) -> str:
        return managed.diff(self.path, self.old, self.new) if self.changed else ""

    def apply(self) -> None:
        if not self.changed:
            return
        if self.new is None:
            managed.remove(self.path, self.remove_directory)
        else:
            managed.write(self.path, self.new)


def include_file() -> Path:
    return paths.config_dir() / "ssh_config"


def proxy_command(queue: str | None = None) -> list[str]:
    """How ssh runs us: this interpreter by absolute path (no PATH shim), our directories as
    they are now (so the proxy needs no platformdirs), plus a non-default queue.

    Not resolved through symlinks: a venv's python is a link, and its target would lose the venv.
    """
    argv = [os.path.abspath(sys.executable), "-m", "condor_job_proxy",
            "--config-dir", str(paths.config_dir()), "--state-dir", str(paths.state_dir())]
    chosen = paths.queue_dir(queue)
    if chosen != paths.state_dir() / "queue":
        argv += ["--queue", str(chosen.resolve())]
    return argv


def daemon_socket_base(queue: str | None = None, create: bool = True,
                       command: list[str] | None = None) -> Path | None:
    """Where this config's connect daemons listen (see control.daemon_socket_base), or None
    when ssh runs none: connect_daemon = false, no SO_PEERCRED (Linux's) to check who
    connects, or no private directory short enough for the socket."""
    if not paths.settings().connect_daemon or not hasattr(socket, "SO_PEERCRED"):
        return None
    return control.daemon_socket_base(command or proxy_command(queue), create)


def _daemon_client(command: list[str], chosen: Settings,
                   create: bool) -> list[str]:
    """The fast client and its socket base, to put before the full command; [] when off."""
    base = daemon_socket_base(create=create, command=command)
    if base is None:
        return []
    return [*build.client_argv(command[0], chosen.compiled_client, create), str(base)]


def _control_check(sockets: Path | None, command: list[str], chosen: Settings,
                   create: bool) -> list[str]:
    """The fast client's check that ssh runs before it uses a socket directory in /tmp."""
    if sockets is None or not control.needs_check(sockets):
        return []
    return [*build.client_argv(command[0], chosen.compiled_client, create),
            "--private-dir", str(sockets)]


def listed_jobs(resolver: BaseResolver | None, via: Hop | None = None
                ) -> tuple[list[JobSummary], int]:
    """The jobs to give Host blocks, and how many others the queue holds: only this user's own
    (a shared local queue holds everyone's; VS Code's picker must not offer those, and another
    account's job is entered only by typing its name).
    A pool's and an access point's listings hold the user's own jobs already."""
    return (list_jobs(via, own=True), 0) if via else resolver.enterable_jobs()


def include_change(resolver: BaseResolver | None, queue: str | None = None, dry_run: bool = False,
                   jobs: list[JobSummary] | None = None, via: Hop | None = None,
                   windows: bool = os.name == "nt", left_out: int = 0) -> Change:
    """The include as it should be now; a dry run creates no directory for the sockets either.

    ``jobs`` spares a second query when the caller has listed them already (``left_out``: how
    many others ``listed_jobs`` left out). With ``via`` the
    jobs are the access point's, and ssh reaches them through it (no connect daemon).
    ``windows``: for Windows' OpenSSH (no fd passing, no shared connections).
    """
    chosen = paths.settings()
    command = proxy_command(queue)
    sockets = (control.control_dir(create=not dry_run)
               if chosen.control_master and not windows else None)
    include_settings = include.IncludeSettings(
        proxy_command=command, identity=paths.user_key_path(),
        known_hosts_dir=client_files.known_hosts_dir(), prefix=chosen.host_prefix,
        identities_dir=client_files.identities_dir(),
        control_dir=sockets, control_persist=chosen.control_persist,
        control_check=_control_check(sockets, command, chosen, create=not dry_run),
        daemon_client=[] if via else _daemon_client(command, chosen, create=not dry_run),
        via=via, windows=windows, interactive_hosts=tuple(interactive.host_names()))
    path = include_file()
    if jobs is None:
        jobs, left_out = listed_jobs(resolver, via)
    text = include.render(jobs, include_settings)
    if left_out:
        text += (f"\n# {left_out} other job{'s' if left_out != 1 else ''} in the queue "
                 "left out: other users' jobs (enter one on purpose: ssh ACCOUNT@job-N).\n")
    return Change(path, managed.read(path), text)


def apply_include(change: Change, jobs: list[JobSummary]) -> None:
    """Write the include, and the files other clients read before its ProxyCommand runs."""
    change.apply()
    readers.write(jobs, paths.settings().host_prefix)


def refresh_include(queue: str | None = None) -> None:
    """Rewrite the include from the job list now: the connect path's hook for a login name
    the job does not run as, so that the next ``ssh job-N.P`` gets the right ``User``."""
    from condor_job_proxy.proxycmd.resolvers import default_resolver
    resolver = default_resolver(queue)
    jobs, left_out = listed_jobs(resolver)
    apply_include(include_change(resolver, queue, jobs=jobs, left_out=left_out), jobs)


def includes_host(host: str) -> bool:
    """Whether the include already has a literal block for ``host`` (refresh --if-missing)."""
    text = managed.read(include_file()) or ""
    return any(line.startswith("Host ") and host in line.split()[1:]
               for line in text.splitlines())


def block_change(ssh_config: Path, queue: str | None = None) -> Change:
    old = managed.read(ssh_config)
    chosen = paths.settings()
    created = managed.created_marker(old)
    if old is None:
        created = "file" if ssh_config.resolve().parent.is_dir() else "directory"
    refresh = proxy_command(queue) if chosen.refresh_on_connect else None
    new_block = managed.block(include_file(), refresh, chosen.host_prefix, created)
    return Change(ssh_config, old, managed.with_block(old or "", new_block))


def removal_changes(ssh_config: Path) -> list[Change]:
    """Take out our block (and the file, if setup made it and nothing else is in it), the
    include and the remembered access point."""
    old = managed.read(ssh_config)
    new = managed.without_block(old) if old is not None else None
    created = managed.created_marker(old)
    if created and new == "":
        new = None
    path, hop = include_file(), via_file()
    return [Change(ssh_config, old, new, remove_directory=created == "directory"),
            Change(path, managed.read(path), None), Change(hop, managed.read(hop), None)]
