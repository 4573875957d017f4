"""Reading EC2 job ads and cloud-init consoles: real boot logs, HTCondor's ad shapes, config."""
from __future__ import annotations

from pathlib import Path

import pytest

from condor_job_proxy.proxycmd.resolvers import ec2_console as cloudinit
from condor_job_proxy.proxycmd.errors import ProxyError
from condor_job_proxy.proxycmd.resolvers.ec2 import is_ec2_job, key_pair_file, login_user, region_from_url
from condor_job_proxy.common.jobid import JobId
from condor_job_proxy.common.settings import parse

SAMPLES = Path(__file__).resolve().parent / "data" / "cloud-init"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def test_host_keys_from_an_ec2_boot_log() -> None:
    keys = cloudinit.host_keys(sample("ec2-ubuntu-14.04-cloud-init-0.7.5.txt"))
    assert [key.split()[0] for key in keys] == ["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"]
    assert keys[1] == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGH5fGgBdTgC1nD8E/TekwJAet/K4f1f8DiBiQ4NYry/"


def test_a_key_cut_short_in_the_console_is_not_pinned() -> None:
    keys = cloudinit.host_keys(sample("nocloud-ubuntu-20.04-cloud-init-21.4.txt"))
    assert [key.split()[0] for key in keys] == ["ecdsa-sha2-nistp256", "ssh-ed25519"]


def test_console_with_windows_line_ends_and_prefixes_still_gives_keys() -> None:
    text = sample("ec2-ubuntu-14.04-cloud-init-0.7.5.txt").replace("\n", "\r\n")
    text = text.replace("\r\nssh-ed25519", "\r\n[   21.5] cloud-init[812]: ssh-ed25519")
    assert len(cloudinit.host_keys(text)) == 3


def test_the_last_boots_keys_win() -> None:
    first = sample("nocloud-ubuntu-20.04-cloud-init-21.4.txt")
    second = sample("ec2-ubuntu-14.04-cloud-init-0.7.5.txt")
    assert cloudinit.host_keys(first + second) == cloudinit.host_keys(second)


def test_console_without_host_keys_gives_none() -> None:
    assert cloudinit.host_keys("Linux version 6.1\nBIOS-provided physical RAM map:\n") == []
    unfinished = "-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAA\n"
    assert cloudinit.host_keys(unfinished) == []


def test_ec2_jobs_are_recognised_by_grid_universe_and_resource() -> None:
    assert is_ec2_job({"JobUniverse": 9, "GridResource": "ec2 https://ec2.us-east-1.amazonaws.com/"})
    assert not is_ec2_job({"JobUniverse": 9, "GridResource": "batch slurm"})
    assert not is_ec2_job({"JobUniverse": 5})
    # A vanilla job's owner may set any +GridResource: that makes no EC2 job of it.
    assert not is_ec2_job({"JobUniverse": 5, "GridResource": "ec2 https://ec2.us-east-1.amazonaws.com/"})


@pytest.mark.parametrize("url, region", [
    ("https://ec2.us-east-1.amazonaws.com/", "us-east-1"),
    ("https://ec2.eu-west-2.amazonaws.com", "eu-west-2"),
    ("http://ec2.us-gov-west-1.example.org:5000/", "us-gov-west-1"),
    ("http://127.0.0.1:5000/", None),
    ("https://ec2.amazonaws.com/", None),
    ("https://compute.example.org/", None),
])
def test_region_comes_from_the_service_host_name(url: str, region: str | None) -> None:
    assert region_from_url(url) == region


def test_login_user_per_job_then_per_ami_then_default() -> None:
    settings = {"ec2": {"user": "admin", "users_by_ami": {"ami-1": "ubuntu"},
                        "users_by_job": {"40.0": "debian"}}}
    ad = {"GridResource": "ec2 https://ec2.us-east-1.amazonaws.com/", "EC2AmiID": "ami-1"}
    assert login_user(ad, JobId(40, 0), parse(settings).ec2) == "debian"
    assert login_user(ad, JobId(41, 0), parse(settings).ec2) == "ubuntu"
    assert login_user({**ad, "EC2AmiID": "ami-2"}, JobId(41, 0), parse(settings).ec2) == "admin"
    assert login_user({**ad, "EC2AmiID": "ami-2"}, JobId(41, 0), parse({}).ec2) == "ec2-user"


def test_a_configured_login_name_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="ec2.user must be a login name"):
        parse({"ec2": {"user": "-oProxyCommand=x"}})


def test_key_pair_file_relative_to_the_jobs_directory(tmp_path: Path) -> None:
    key = tmp_path / "job.pem"
    key.write_text("key")
    key.chmod(0o600)
    assert key_pair_file({"EC2KeyPairFile": "job.pem", "Iwd": str(tmp_path)}, JobId(1, 0)) == key


def test_job_without_key_pair_file_is_refused() -> None:
    with pytest.raises(ProxyError, match="no EC2KeyPairFile"):
        key_pair_file({"GridResource": "ec2 http://x/"}, JobId(1, 0))
