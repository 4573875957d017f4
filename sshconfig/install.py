"""setup / refresh / uninstall: the include file and the managed block, as one unit."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from proxycmd import jobfiles, knownhosts
from proxycmd.resolvers import Resolver
from starter import paths

from . import include, managed


@dataclass(frozen=True)
class Change:
    path: Path
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def diff(self) -> str:
        return managed.diff(self.path, self.old, self.new)

    def apply(self) -> None:
        if self.changed:
            managed.write(self.path, self.new)


def include_file() -> Path:
    return paths.config_dir() / "ssh_config"


def proxy_command(queue: str | None = None) -> list[str]:
    """How ssh runs us: this interpreter by absolute path (no PATH shim), plus a non-default queue.

    Not resolved through symlinks: a venv's python is a link, and its target would lose the venv.
    """
    argv = [os.path.abspath(sys.executable), "-m", "condor_job_proxy"]
    chosen = paths.queue_dir(queue)
    if chosen != paths.state_dir() / "queue":
        argv += ["--queue", str(chosen.resolve())]
    return argv


def include_change(resolver: Resolver, queue: str | None = None) -> Change:
    settings = include.IncludeSettings(proxy_command=proxy_command(queue),
                                       identity=paths.user_key_path(),
                                       known_hosts_dir=knownhosts.known_hosts_dir(),
                                       job_files_dir=jobfiles.jobs_dir())
    path = include_file()
    return Change(path, managed.read(path), include.render(resolver.list_jobs(), settings))


def block_change(ssh_config: Path) -> Change:
    old = managed.read(ssh_config)
    return Change(ssh_config, old, managed.with_block(old, include_file()))


def removal_changes(ssh_config: Path) -> list[Change]:
    old = managed.read(ssh_config)
    return [Change(ssh_config, old, managed.without_block(old))]
