"""What a session's ``sshd -i`` needs from this machine, found once per starter.

Includes the unprivileged-terminal workaround: where /dev/pts is mounted without ``gid=5``
an unprivileged sshd cannot chown a pty to group tty and the session dies at login. Under
libnss-wrapper with a group file that has no ``tty`` group, sshd keeps the pty with the
user's own group (mode 0600) instead. The same wrapper gives a passwd entry to a job user
that has none.
"""
from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass

from . import terminals

_SSHD_PLACES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")
_SFTP_PLACES = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                "/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server")
NSS_WRAPPER_PLACES = ("/usr/lib/x86_64-linux-gnu/libnss_wrapper.so",
                       "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so",
                       "/usr/lib64/libnss_wrapper.so", "/usr/lib/libnss_wrapper.so")
DISABLED_SHELLS = ("/bin/false", "/usr/bin/false", "/sbin/nologin", "/usr/sbin/nologin",
                   "/bin/true", "/usr/bin/true")


@dataclass(frozen=True)
class SshdHost:
    sshd: str | None
    sftp_server: str | None
    nss_wrapper: str | None      # set when sessions must run sshd under libnss-wrapper
    passwd_line: str             # the job user's passwd entry, as sshd will see it
    group_line: str
    login_shell: str
    user_name: str               # the login name sessions run as (uid<N> without an entry)
    has_passwd_entry: bool
    no_terminal: str | None      # why sessions cannot have a terminal here; None when they can

    @property
    def login_disabled(self) -> bool:
        return self.login_shell in DISABLED_SHELLS or os.path.basename(self.login_shell) == "nologin"


def probe() -> SshdHost:
    """Look up sshd, sftp-server, the job user's account and whether ptys need the wrapper."""
    uid, gid = os.getuid(), os.getgid()
    try:
        entry = pwd.getpwuid(uid)
        name, home, shell = entry.pw_name, entry.pw_dir, entry.pw_shell or "/bin/sh"
        has_entry = True
    except KeyError:
        name, home, shell = os.environ.get("USER") or f"uid{uid}", os.getcwd(), "/bin/sh"
        has_entry = False
    wrapper = first_place(NSS_WRAPPER_PLACES)
    pts_needs_help = terminals.pts_needs_help()
    needs_wrapper = uid != 0 and (not has_entry or pts_needs_help)
    return SshdHost(
        sshd=first_place(_SSHD_PLACES) or shutil.which("sshd"),
        sftp_server=first_place(_SFTP_PLACES),
        nss_wrapper=wrapper if needs_wrapper else None,
        passwd_line=f"{name}:x:{uid}:{gid}:{name}:{home}:{shell}",
        group_line=f"{_group_name(gid, name)}:x:{gid}:",
        login_shell=shell,
        user_name=name,
        has_passwd_entry=has_entry,
        no_terminal=terminals.no_terminal_reason() if pts_needs_help and not wrapper else None,
    )


def _group_name(gid: int, fallback: str) -> str:
    import grp
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return fallback


def first_place(places: tuple[str, ...]) -> str | None:
    return next((place for place in places if os.access(place, os.X_OK) or
                 (place.endswith(".so") and os.path.exists(place))), None)
