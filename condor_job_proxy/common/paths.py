"""Where things live on a user's machine; every path comes from platformdirs or configuration.

The starter needs the queue directory and the user's job-access key (authorized by default);
the proxy and the config generator build on the same functions.
"""
from __future__ import annotations

import os
from pathlib import Path

from .settings import Settings, read as read_settings

APP = "condor-job-proxy"
QUEUE_ENV = "CONDOR_JOB_PROXY_QUEUE"
_given: dict[str, Path] = {}


def use_dirs(config: str | None = None, state: str | None = None) -> None:
    """Take the config and state directories as given, not from platformdirs.

    The generated ProxyCommand names the directories it was generated with, so the proxy finds
    the same files whatever environment ssh runs it in, and never imports platformdirs.
    """
    for name, value in (("config", config), ("state", state)):
        if value:
            _given[name] = Path(value)


def config_dir() -> Path:
    if "config" in _given:
        return _given["config"]
    import platformdirs  # here, not at the top: a ProxyCommand given every path never needs it
    return Path(platformdirs.user_config_dir(APP))


def state_dir() -> Path:
    if "state" in _given:
        return _given["state"]
    import platformdirs
    return Path(platformdirs.user_state_dir(APP))


def user_key_path() -> Path:
    """The user's job-access private key (its public half beside it, ``.pub``)."""
    return config_dir() / "id_ed25519"


def identities_dir() -> Path:
    """Per-job links to the key ssh should offer (``<identities>/<host>``): the include names
    them by ``%h``, and asyncssh opens them before it runs the ProxyCommand, so the local
    starter links a new job's names as the proxy and ``config refresh`` do."""
    return state_dir() / "identities"


def config_file() -> Path:
    return config_dir() / "config.toml"


def settings() -> Settings:
    """config.toml's settings, typed and checked (common/settings.py); missing: all defaults."""
    return read_settings(config_file())


def queue_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The local queue: --queue, else $CONDOR_JOB_PROXY_QUEUE, else config.toml, else state dir."""
    chosen = explicit or os.environ.get(QUEUE_ENV) or settings().queue
    return Path(chosen).expanduser() if chosen else state_dir() / "queue"
