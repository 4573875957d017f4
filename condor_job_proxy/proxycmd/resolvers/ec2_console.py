"""Host keys that cloud-init prints on an instance's console, for pinning before the first login.

cloud-init writes the public host keys between two marker lines straight to the console; other
writers (syslog, the kernel) interleave their own lines and prefixes, and published or truncated
output can cut a key short. Only well-formed keys of the last block count: a later boot's block
supersedes an earlier one.
"""
from __future__ import annotations

import base64
import binascii
import re

from condor_job_proxy.common.keys import HOST_KEY_TYPES

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"
_KEY = re.compile(f"(?:^|\\s)({'|'.join(map(re.escape, HOST_KEY_TYPES))})" r"\s+"
                  r"([A-Za-z0-9+/]+={0,2})(?=\s|$)")
_FIELDS = {"ssh-ed25519": 2, "ssh-rsa": 3}   # wire strings in each key blob; ecdsa has 3


def host_keys(console: str) -> list[str]:
    """``"<type> <base64>"`` for each valid key in the console's last host-key block."""
    block = _last_block(console)
    keys = []
    for line in block:
        match = _KEY.search(line)
        if match and well_formed(*match.groups()):
            key = f"{match.group(1)} {match.group(2)}"
            if key not in keys:
                keys.append(key)
    return keys


def _last_block(console: str) -> list[str]:
    lines = console.replace("\r", "").split("\n")
    found: list[str] = []
    inside: list[str] | None = None
    for line in lines:
        if BEGIN in line:
            inside = []
        elif END in line and inside is not None:
            found, inside = inside, None
        elif inside is not None:
            inside.append(line)
    return found


def well_formed(key_type: str, encoded: str) -> bool:
    """The blob names the same type and holds exactly its fields (catches cut-off lines)."""
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False
    fields = []
    offset = 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            return False
        size = int.from_bytes(blob[offset:offset + 4], "big")
        offset += 4
        if offset + size > len(blob):
            return False
        fields.append(blob[offset:offset + size])
        offset += size
    expected = _FIELDS.get(key_type, 3)
    return (len(fields) == expected and fields[0] == key_type.encode()
            and (key_type != "ssh-ed25519" or len(fields[1]) == 32))
