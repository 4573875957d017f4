"""config.toml: every key with its type and default, read and checked once per process.

Callers take typed fields (``paths.settings().wait``); nothing else reads the file. A value of
the wrong type or shape is one line naming the file, the key and what it must be (the proxy
exits 255 with it, the CLI reports it as a click error), so a typo never silently changes what
ssh does. An unknown key is a one-line warning, not an error: HTCondor users know that from
condor_submit ("the line ... was unused ... Is it a typo?"), and one config.toml is often read
by two installations (a shared home on an access point and a laptop), where a key only the
newer one knows must not break ssh on the older.

Records are named tuples, not dataclasses: frozen and typed alike, and ``dataclasses`` costs
the ProxyCommand's start ~5 ms of imports. For the same start, no ``from __future__ import
annotations`` (NamedTuple would compile every field's annotation from its string) and the two
patterns are compiled on first use.
"""
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from .jobid import DEFAULT_HOST_PREFIX
from .names import is_login_name, printable

# Letters, digits, '-', '_' and '.': safe in file names, shell words and ssh_config patterns.
_PREFIX = r"[A-Za-z][A-Za-z0-9_.-]{0,30}"   # compiled (and cached by re) on first use
_DURATION = r"[0-9]+[smhdwSMHDW]?"
# Long enough for a burst of scp/rsync/completion runs and VS Code's reconnects, short enough
# that a finished job is not held open long by an idle shared connection (its sessions count).
DEFAULT_PERSIST = "60s"
# Ten minutes: a working session's connects share one daemon; a forgotten one goes soon.
DEFAULT_DAEMON_IDLE = 600
# Long enough for a run of scp/rsync/Ansible connects; short beside sshd's 120 s login grace.
DEFAULT_SPARE_SECONDS = 30
WAIT_FOREVER = 24 * 3600.0      # what "wait = true" waits for a job to start, at most
DEFAULT_NATIVE_WAIT = 30.0      # like the generated config's ConnectTimeout
DEFAULT_KEYGEN_OPTIONS = "-t ed25519"   # the pool starter's RSA keygen is most of its setup
_NONE: Mapping[str, str] = MappingProxyType({})


class SettingsError(ValueError):
    """config.toml holds what it may not: one line naming the file and the key."""


class TemplateSettings(NamedTuple):
    """One ``[interactive]`` table's own values (None: not set there)."""
    linger: int | None = None
    command: tuple[str, ...] | None = None
    request_cpus: int | None = None
    request_memory: int | None = None
    request_gpus: int | None = None
    submit: tuple[str, ...] | None = None
    starter: str | None = None


class InteractiveSettings(NamedTuple):
    """``[interactive]``: the defaults of every template, and the named ``[interactive.NAME]``."""
    defaults: TemplateSettings = TemplateSettings()
    templates: Mapping[str, TemplateSettings] = MappingProxyType({})


class Ec2Settings(NamedTuple):
    """``[ec2]``: the login user of EC2 jobs, by job id, by AMI, else one for all."""
    user: str | None = None
    users_by_ami: Mapping[str, str] = _NONE
    users_by_job: Mapping[str, str] = _NONE


class NativeSettings(NamedTuple):
    """``[htcondor_native]``: riding on the pool's own condor_ssh_to_job."""
    tool: str | None = None              # None: HTCondor's on PATH
    wait_seconds: float = DEFAULT_NATIVE_WAIT
    keygen_options: str = DEFAULT_KEYGEN_OPTIONS


class Settings(NamedTuple):
    """Everything config.toml may say; an absent file or key is the default here."""
    queue: str | None = None             # the local queue directory
    resolver: str | None = None          # "local" or "htcondor"; None: by what is installed
    schedds: tuple[str, ...] = ()        # () : the local schedd
    pool: str | None = None              # the collector the schedds are located in
    wait: float | None = None            # seconds to wait for an idle job; None: "auto"
    host_prefix: str = DEFAULT_HOST_PREFIX
    control_master: bool = True
    control_persist: str = DEFAULT_PERSIST   # an ssh_config time value, or "no"
    refresh_on_connect: bool = False
    connect_daemon: bool = True
    connect_daemon_idle: int = DEFAULT_DAEMON_IDLE
    spare_session_seconds: int = DEFAULT_SPARE_SECONDS
    compiled_client: bool = True
    interactive: InteractiveSettings = InteractiveSettings()
    ec2: Ec2Settings = Ec2Settings()
    htcondor_native: NativeSettings = NativeSettings()


class _Wanted(Exception):
    """What a key must be, said by its checker; the caller adds the file, key and value."""


_read: dict[Path, Settings] = {}


def read(path: Path) -> Settings:
    """The settings in ``path`` (missing: all defaults), read and checked once per process:
    the resolver, the queue and the transports all ask on one connect."""
    if path not in _read:
        _read[path] = parse(_toml(path), str(path))
    return _read[path]


def _toml(path: Path) -> dict:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    import tomllib   # here: most runs of a process never get this far
    try:
        return tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SettingsError(f"{path}: {err}") from None


def parse(data: Mapping, where: str = "config.toml") -> Settings:
    """``data`` (config.toml's content) checked and typed; ``where`` names it in errors."""
    return Settings(**_table(data, _top_fields(where), where, ""))


def _table(data: object, fields: Mapping[str, Callable], where: str, prefix: str) -> dict:
    """Each known key of a TOML table through its checker; an unknown one is warned about."""
    chosen = {}
    for key, value in _as_table(data, where, prefix).items():
        check = fields.get(key)
        if check is None:
            _warn_unknown(where, prefix + key, fields)
            continue
        try:
            chosen[key] = check(value)
        except _Wanted as wanted:
            raise SettingsError(f"{where}: {prefix}{key} must be {wanted}, not "
                                f"{printable(repr(value), 80)}") from None
    return chosen


def _as_table(data: object, where: str, prefix: str) -> Mapping:
    if not isinstance(data, Mapping):
        raise SettingsError(f"{where}: {prefix.rstrip('.')} must be a table, not "
                            f"{printable(repr(data), 80)}")
    return data


def _warn_unknown(where: str, key: str, fields: Mapping[str, Callable]) -> None:
    import difflib   # only when there is something to say
    near = difflib.get_close_matches(key.rpartition(".")[2], fields, 1)
    hint = f" (did you mean {near[0]}?)" if near else ""
    sys.stderr.write(f"condor-job-proxy: warning: {where}: unknown key "
                     f"{printable(key, 80)} ignored{hint}\n")


def _top_fields(where: str) -> dict[str, Callable]:
    return {
        "queue": _optional, "resolver": _one_of("local", "htcondor"), "schedds": _names,
        "pool": _optional, "wait": _wait, "host_prefix": _host_prefix, "control_master": _flag,
        "control_persist": _persist, "refresh_on_connect": _flag, "connect_daemon": _flag,
        "connect_daemon_idle": _seconds(1), "spare_session_seconds": _seconds(0),
        "compiled_client": _flag,
        "interactive": lambda value: _interactive(value, where),
        "ec2": lambda value: Ec2Settings(**_table(value, _EC2_FIELDS, where, "ec2.")),
        "htcondor_native": lambda value: NativeSettings(
            **_table(value, _NATIVE_FIELDS, where, "htcondor_native.")),
    }


# -- checkers: the value typed, or _Wanted saying what it must be --------------------------------

def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Wanted("true or false")
    return value


def _text(value: object) -> str:
    """Any string, the empty one too (keygen_options = "": pass none)."""
    if not isinstance(value, str):
        raise _Wanted("a string")
    return value


def _optional(value: object) -> str | None:
    """A name or path; the empty string, as an absent key, means the default."""
    return _text(value) or None


def _one_of(*choices: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in choices:
            raise _Wanted(" or ".join(f'"{choice}"' for choice in choices))
        return value
    return check


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
        raise _Wanted("a list of strings")
    return tuple(value)


def _names(value: object) -> tuple[str, ...]:
    """schedds: a list of names, or one name."""
    return (value,) if isinstance(value, str) else _strings(value)


def _command(value: object) -> tuple[str, ...]:
    if not _strings(value):
        raise _Wanted("a list of strings")
    return tuple(value)


def _whole(value: object) -> int:
    """A whole number >= 0 (a string of digits too, as the environment gives them)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Wanted("a whole number")
    return value


def _seconds(least: int) -> Callable[[object], int]:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise _Wanted(f"a number of seconds{'' if least else ' (0 or more)'}")
        return value
    return check


def _float_seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _Wanted("a number of seconds")
    return float(value)


def _login(value: object) -> str:
    if not is_login_name(value):
        raise _Wanted("a login name (letters, digits, '_', '.', '@', '-'; not first '-' or '.')")
    return value


def _logins(value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not all(map(is_login_name, value.values())):
        raise _Wanted("a table of login names")
    return MappingProxyType(dict(value))


def is_host_prefix(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(_PREFIX, value) is not None


def _host_prefix(value: object) -> str:
    if not is_host_prefix(value):
        raise _Wanted("a letter then up to 30 letters, digits, '-', '_' or '.'")
    return value


def is_persist(value: object) -> bool:
    """An ssh_config ControlPersist value we write: "no" or a duration."""
    return value == "no" or isinstance(value, str) and re.fullmatch(_DURATION, value) is not None


def _persist(value: object) -> str:
    if value is True:
        return DEFAULT_PERSIST
    if value is False:
        return "no"
    if isinstance(value, int) and value > 0:
        return f"{value}s"
    if isinstance(value, str) and re.fullmatch(_DURATION, value):
        return value
    raise _Wanted('true, false, seconds or a duration like "10m"')


def _wait(value: object) -> float | None:
    if isinstance(value, bool):
        return WAIT_FOREVER if value else 0.0
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    if isinstance(value, str):
        try:
            return parse_wait(value)
        except ValueError:
            pass
    raise _Wanted('true, false, "auto" or seconds')


def parse_wait(text: str) -> float | None:
    """``wait`` as text (config.toml's string, or $CONDOR_JOB_PROXY_WAIT): seconds, or None
    for "auto"; ValueError when it is none of true, false, "auto" or seconds."""
    word = text.strip().lower()
    if word == "auto":
        return None
    if word in ("true", "yes", "1", "on"):
        return WAIT_FOREVER
    if word in ("false", "no", "0", "off"):
        return 0.0
    seconds = float(word)
    if seconds < 0:
        raise ValueError(f"negative: {text!r}")
    return seconds


def _interactive(value: object, where: str) -> InteractiveSettings:
    """The defaults (plain keys) and the named templates (tables) of ``[interactive]``."""
    table = _as_table(value, where, "interactive.")
    plain = {key: item for key, item in table.items() if not isinstance(item, Mapping)}
    named = {key: _template(item, where, f"interactive.{key}.")
             for key, item in table.items() if isinstance(item, Mapping)}
    return InteractiveSettings(_template(plain, where, "interactive."), MappingProxyType(named))


def _template(value: object, where: str, prefix: str) -> TemplateSettings:
    return TemplateSettings(**_table(value, _TEMPLATE_FIELDS, where, prefix))


_TEMPLATE_FIELDS: dict[str, Callable] = {
    "linger": _whole, "command": _command, "request_cpus": _whole, "request_memory": _whole,
    "request_gpus": _whole, "submit": _strings, "starter": _optional,
}
_EC2_FIELDS: dict[str, Callable] = {
    "user": _login, "users_by_ami": _logins, "users_by_job": _logins,
}
_NATIVE_FIELDS: dict[str, Callable] = {
    "tool": _optional, "wait_seconds": _float_seconds, "keygen_options": _text,
}
