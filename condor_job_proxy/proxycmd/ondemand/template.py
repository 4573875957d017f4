"""What ``ssh condor-interactive[-NAME]`` asks for: a template from config.toml (and files).

config.toml::

    [interactive]                  # condor-interactive; defaults for every template
    linger = 600                   # seconds the job stays after its last session ends
    command = ["sleep", "infinity"]   # what the job runs while you work in it
    request_cpus = 1
    request_memory = 2048          # MB
    request_gpus = 0
    submit = ['+ProjectName = "x"']   # HTCondor: more submit commands
    starter = "/opt/cjp/bin/condor-job-starter"   # HTCondor: the starter on the execute nodes

    [interactive.gpu]              # condor-interactive-gpu: only what differs
    request_gpus = 1

A file ``interactive/NAME.sub`` in the config dir (``default.sub`` for condor-interactive)
adds its lines to the submit description, and makes NAME a template by itself. ssh does not
pass ``-o SetEnv`` values to a ProxyCommand (only to the server), but it does pass its own
environment: $CONDOR_INTERACTIVE_CPUS, _MEMORY and _GPUS override the template for one run.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

from condor_job_proxy.common import paths
from condor_job_proxy.common.settings import TemplateSettings

from ..errors import ProxyError

HOST = "condor-interactive"
DEFAULT_NAME = "default"
DEFAULT_LINGER = 600   # ten minutes: VS Code's reconnects and a coffee break find the job
DEFAULT_COMMAND = ("sleep", "infinity")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,40}")
_RESOURCES = {"request_cpus": "CPUS", "request_memory": "MEMORY", "request_gpus": "GPUS"}


class Template(NamedTuple):
    name: str
    linger: int
    command: tuple[str, ...]
    resources: dict          # request_cpus / request_memory / request_gpus -> int
    submit: tuple[str, ...]  # extra submit commands (HTCondor)
    starter: str             # HTCondor: the starter's path on the execute nodes

    @property
    def label(self) -> str:
        """What the job is found again by: the template and the resources it was given."""
        asked = " ".join(f"{key.split('_')[1]}={value}" for key, value in
                         sorted(self.resources.items()))
        return f"{self.name} {asked}".strip()


def template_name(host: str) -> str | None:
    """``condor-interactive`` -> "default", ``condor-interactive-gpu`` -> "gpu", else None."""
    if host == HOST:
        return DEFAULT_NAME
    if host.startswith(HOST + "-") and _NAME.fullmatch(host[len(HOST) + 1:]):
        return host[len(HOST) + 1:]
    return None


def template_names() -> list[str]:
    """Every configured template, the default first (for the include's Host line and VS
    Code's host list)."""
    names = set(paths.settings().interactive.templates)
    names |= {path.stem for path in _files_dir().glob("*.sub") if _NAME.fullmatch(path.stem)}
    return [DEFAULT_NAME, *sorted(name for name in names - {DEFAULT_NAME} if _NAME.fullmatch(name))]


def host_for(name: str) -> str:
    return HOST if name == DEFAULT_NAME else f"{HOST}-{name}"


def load(name: str) -> Template:
    """The template ``name``: [interactive] defaults, its own table, its file, the environment."""
    section = paths.settings().interactive
    own = section.templates.get(name) if name != DEFAULT_NAME else None
    file = _files_dir() / f"{name}.sub"
    if name != DEFAULT_NAME and own is None and not file.exists():
        raise ProxyError(f"no interactive template {name!r}: add [interactive.{name}] to "
                         f"{paths.config_file()} or write {file}")
    merged = _merged(section.defaults, own or TemplateSettings())
    return Template(name=name, linger=DEFAULT_LINGER if merged.linger is None else merged.linger,
                    command=merged.command or DEFAULT_COMMAND, resources=_resources(merged),
                    submit=(*(merged.submit or ()), *_file_lines(file)),
                    starter=merged.starter or _default_starter())


def _merged(defaults: TemplateSettings, own: TemplateSettings) -> TemplateSettings:
    """The template's own values, else [interactive]'s."""
    return TemplateSettings(*(mine if mine is not None else default
                              for mine, default in zip(own, defaults)))


def _files_dir() -> Path:
    return paths.config_dir() / "interactive"


def _resources(chosen: TemplateSettings) -> dict:
    """request_cpus / request_memory / request_gpus: $CONDOR_INTERACTIVE_* for this run, else
    the template's."""
    resources, given = {}, chosen._asdict()
    for key, suffix in _RESOURCES.items():
        value = os.environ.get(f"CONDOR_INTERACTIVE_{suffix}") or given[key]
        if value is None:
            continue
        try:
            resources[key] = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"$CONDOR_INTERACTIVE_{suffix} must be a whole number, not "
                             f"{value!r}") from None
    return resources


def _file_lines(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if any(line.lower().split()[0] == "queue" for line in lines):
        raise ValueError(f"{path}: leave out the queue statement (one job is submitted)")
    return lines


def _default_starter() -> str:
    """The starter beside this interpreter (a shared install), else the one on PATH."""
    beside = Path(sys.executable).parent / "condor-job-starter"
    return str(beside) if beside.exists() else shutil.which("condor-job-starter") or str(beside)
