"""The handshake's SSHSIG signatures: made in-process by the starter, or by ssh-keygen, the two
must be interchangeable, and anything but the right key over the right data must be refused."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from condor_job_proxy.common import sshsig

DATA = b"condor-job-proxy/1 server\nabc\n"


def _key(tmp_path: Path, name: str = "key", kind: str = "ed25519") -> tuple[str, str]:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    return str(path), " ".join(path.with_suffix(".pub").read_text().split()[:2])


def _keygen_sign(key_file: str, data: bytes, namespace: str = sshsig.NAMESPACE) -> str:
    return subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", namespace, "-f", key_file],
                          input=data, capture_output=True, check=True).stdout.decode()


def test_starter_signature_verifies_with_ssh_keygen(tmp_path: Path) -> None:
    key_file, public = _key(tmp_path)
    sshsig.start_verify(public).finish(DATA, sshsig.sign(key_file, DATA))


def test_ssh_keygen_signature_verifies_in_the_starter(tmp_path: Path) -> None:
    key_file, public = _key(tmp_path)
    sshsig.verify(public, DATA, _keygen_sign(key_file, DATA))


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_signature_over_other_data_is_refused(tmp_path: Path, kind: str) -> None:
    key_file, public = _key(tmp_path, kind=kind)
    with pytest.raises(sshsig.SignatureError):
        sshsig.verify(public, DATA + b"x", sshsig.sign(key_file, DATA))


def test_signature_by_another_key_is_refused(tmp_path: Path) -> None:
    key_file, _ = _key(tmp_path, "signer")
    _, other = _key(tmp_path, "other")
    with pytest.raises(sshsig.SignatureError):
        sshsig.verify(other, DATA, sshsig.sign(key_file, DATA))


def test_signature_in_another_namespace_is_refused(tmp_path: Path) -> None:
    key_file, public = _key(tmp_path)
    with pytest.raises(sshsig.SignatureError):
        sshsig.verify(public, DATA, _keygen_sign(key_file, DATA, namespace="file"))


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_damaged_signature_is_refused(tmp_path: Path, damage: str) -> None:
    key_file, public = _key(tmp_path)
    lines = sshsig.sign(key_file, DATA).splitlines()
    body = lines[2]
    lines[2] = {"flip": body[:10] + ("A" if body[10] != "A" else "B") + body[11:],
                "truncate": body[:-8], "garbage": "!!!!"}[damage]
    with pytest.raises(sshsig.SignatureError):
        sshsig.verify(public, DATA, "\n".join(lines) + "\n")


def test_ecdsa_keys_sign_and_verify_through_ssh_keygen(tmp_path: Path) -> None:
    key_file, public = _key(tmp_path, kind="ecdsa")
    sshsig.verify(public, DATA, sshsig.sign(key_file, DATA))
