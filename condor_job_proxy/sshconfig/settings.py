"""The config.toml keys that shape the generated ssh config, checked once, with clear errors.

Keys (all optional):
  host_prefix = "job-"          job host names are <prefix><cluster>.<proc>
  control_master = true         share one connection per job between ssh runs
  control_persist = "60s"       how long an idle shared connection stays; false: until its
                                first session ends
  refresh_on_connect = false    refresh the include from ssh itself when it meets a job host
                                it has no block for (a `Match exec` in ~/.ssh/config)
  connect_daemon = true         ssh asks a per-user connect daemon, started by the first
                                connect, to do the proxy's work (faster connects)
  connect_daemon_idle = 600     seconds a connect daemon stays with no connects
  spare_session_seconds = 30    a job connected to again without a shared connection gets its
                                next session opened ahead of need, kept this long (0: never)
  compiled_client = true        build the daemon's fast client with the C compiler, if any
                                (false: ssh runs its Python twin, a few ms slower)
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from condor_job_proxy.common import paths
from condor_job_proxy.common.jobid import DEFAULT_HOST_PREFIX

# Letters, digits, '-', '_' and '.': safe in file names, shell words and ssh_config patterns.
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,30}")
_DURATION = re.compile(r"[0-9]+[smhdwSMHDW]?")
# Long enough for a burst of scp/rsync/completion runs and VS Code's reconnects, short enough
# that a finished job is not held open long by an idle shared connection (its sessions count).
DEFAULT_PERSIST = "60s"
# Ten minutes: a working session's connects share one daemon; a forgotten one goes soon.
DEFAULT_DAEMON_IDLE = 600
# Long enough for a run of scp/rsync/Ansible connects; short beside sshd's 120 s login grace.
DEFAULT_SPARE_SECONDS = 30


@dataclass(frozen=True)
class ConfigSettings:
    host_prefix: str = DEFAULT_HOST_PREFIX
    control_master: bool = True
    control_persist: str = DEFAULT_PERSIST     # an ssh_config time value, or "no"
    refresh_on_connect: bool = False
    connect_daemon: bool = True
    connect_daemon_idle: int = DEFAULT_DAEMON_IDLE
    spare_session_seconds: int = DEFAULT_SPARE_SECONDS
    compiled_client: bool = True


def is_host_prefix(value: object) -> bool:
    return isinstance(value, str) and _PREFIX.fullmatch(value) is not None


def is_persist(value: object) -> bool:
    """An ssh_config ControlPersist value we write: "no" or a duration."""
    return value == "no" or isinstance(value, str) and _DURATION.fullmatch(value) is not None


def load() -> ConfigSettings:
    """The settings from config.toml; a wrong value is an error naming the key and the file."""
    data = paths.settings()
    where = paths.config_file()
    prefix = data.get("host_prefix", DEFAULT_HOST_PREFIX)
    if not is_host_prefix(prefix):
        raise ValueError(f"{where}: host_prefix must be a letter then up to 30 letters, digits, "
                         f"'-', '_' or '.', not {prefix!r}")
    return ConfigSettings(host_prefix=prefix,
                          control_master=_flag(data, "control_master", True, where),
                          control_persist=_persist(data.get("control_persist", True), where),
                          refresh_on_connect=_flag(data, "refresh_on_connect", False, where),
                          connect_daemon=_flag(data, "connect_daemon", True, where),
                          connect_daemon_idle=_seconds(data, "connect_daemon_idle",
                                                       DEFAULT_DAEMON_IDLE, where),
                          spare_session_seconds=_seconds(data, "spare_session_seconds",
                                                         DEFAULT_SPARE_SECONDS, where,
                                                         zero=True),
                          compiled_client=_flag(data, "compiled_client", True, where))


def _flag(data: dict, key: str, default: bool, where: object) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{where}: {key} must be true or false, not {value!r}")
    return value


def _seconds(data: dict, key: str, default: int, where: object, zero: bool = False) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero else 1):
        raise ValueError(f"{where}: {key} must be a number of seconds, not {value!r}")
    return value


def _persist(value: object, where: object) -> str:
    if value is True:
        return DEFAULT_PERSIST
    if value is False:
        return "no"
    if isinstance(value, int) and value > 0:
        return f"{value}s"
    if isinstance(value, str) and _DURATION.fullmatch(value):
        return value
    raise ValueError(f"{where}: control_persist must be true, false, seconds or a duration "
                     f"like \"10m\", not {value!r}")
