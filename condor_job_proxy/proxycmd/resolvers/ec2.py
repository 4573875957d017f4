"""EC2 grid-universe jobs: from the job ad to the instance's sshd, through boto3.

HTCondor runs such a job as an EC2 instance and names it in the ad; the schedd resolver
fetches the ad (projecting ``EC2_ATTRIBUTES``) and hands EC2 jobs here, only the user's own:
the ad names files (key pair, credentials) that are read with the user's rights, and a
service URL they are used at. What a file holds never reaches a message: a credential must be
one line of a key's characters, else it is refused by the file's name alone. boto3 is imported
inside the functions that call EC2, so no other connect path pays for it.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from condor_job_proxy.common.jobid import JobId
from condor_job_proxy.common.names import printable
from condor_job_proxy.common.settings import Ec2Settings

from . import ec2_console as cloudinit
from ..errors import ProxyError
from ..model import JobEndpoint

EC2_ATTRIBUTES = ("JobUniverse", "GridResource", "GridJobId", "EC2InstanceName", "EC2KeyPairFile", "EC2AmiID",
                  "EC2AccessKeyId", "EC2SecretAccessKey", "Iwd")
TRANSPORT = "ec2"
DEFAULT_USER = "ec2-user"     # Amazon Linux's; Debian images use "admin", Ubuntu's "ubuntu"
SSH_PORT = 22
FROM_INSTANCE = "FROM INSTANCE"   # condor_submit's credential value for "use the instance role"
GRID_UNIVERSE = 9                 # JobUniverse, which no job owner can change once submitted
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]+")
_SERVICE_URL = re.compile(r"https?://[!-~]+")     # printable ASCII, no space
_INSTANCE_ID = re.compile(r"i-[0-9A-Za-z]{1,64}")
_HOST = re.compile(r"[0-9A-Za-z.:-]{1,253}")      # a DNS name or an IP address, as EC2 gives them
# AWS key ids are [A-Z0-9], secret keys base64-like; other EC2 services use hex or similar.
_CREDENTIAL = re.compile(r"[A-Za-z0-9+/=._-]{1,256}")
_CREDENTIAL_FILE_BYTES = 4096
_API_TIMEOUTS = {"connect_timeout": 10, "read_timeout": 30, "retries": {"max_attempts": 2}}


def is_ec2_job(ad: Mapping[str, Any]) -> bool:
    """Whether HTCondor runs this job as an EC2 instance: the grid universe and an ``ec2``
    resource. Any job may carry a GridResource of its owner's (``+GridResource``)."""
    return (ad.get("JobUniverse") == GRID_UNIVERSE
            and str(ad.get("GridResource") or "").startswith("ec2 "))


def resolve_ec2_job(ad: Mapping[str, Any], job: JobId,
                    users: Ec2Settings = Ec2Settings()) -> JobEndpoint:
    """Where the job's instance listens for ssh, with the key to log in and its host keys.

    ``users`` is config.toml's ``[ec2]`` table, which picks the login user.
    """
    user = login_user(ad, job, users)
    service_url = _service_url(ad, job)
    instance_id = _instance_id(ad, job)
    key_file = key_pair_file(ad, job)
    client = _ec2_client(ad, service_url, job)
    instance = _describe(client, instance_id, job)
    state = instance.get("State", {}).get("Name", "unknown")
    if state != "running":
        raise ProxyError(f"job {job}: its EC2 instance {instance_id} is {printable(state, 40)}, "
                         "not running")
    host = instance.get("PublicDnsName") or instance.get("PublicIpAddress")
    if not host:
        raise ProxyError(f"job {job}: EC2 instance {instance_id} has no public DNS name or "
                         "public IP address to reach it at")
    if not (isinstance(host, str) and _HOST.fullmatch(host)):
        raise ProxyError(f"job {job}: EC2 gave instance {instance_id} the address "
                         f"{printable(repr(host), 80)}, which is no host name")
    return JobEndpoint(job=job, user=user,
                       transport=TRANSPORT, address=f"{host}:{SSH_PORT}", starter_key="",
                       key_file=str(key_file), instance=instance_id,
                       host_keys=tuple(_console_host_keys(client, instance_id, job)))


def login_user(ad: Mapping[str, Any], job: JobId, users: Ec2Settings) -> str:
    """The account the job's image lets in: per job, else per AMI, else the default, from [ec2]
    (its names checked as login names when config.toml was read).

    The job ad names no login user (HTCondor leaves it to the user), so this is our choice,
    made from the ad (its ``EC2AmiID``, as submitted) and config.toml only: the generated Host
    block, connect and condor_ssh_to_job all call it, so they name the same user without
    asking EC2.
    """
    image_id = ad.get("EC2AmiID")
    return (users.users_by_job.get(str(job))
            or users.users_by_ami.get(image_id if isinstance(image_id, str) else "")
            or users.user or DEFAULT_USER)


def key_pair_file(ad: Mapping[str, Any], job: JobId) -> Path:
    """The job's EC2KeyPairFile, refused (like ssh would) when others may read it."""
    path = _ad_path(ad, "EC2KeyPairFile")
    if path is None:
        raise ProxyError(f"job {job} has no EC2KeyPairFile: submit it with ec2_keypair_file = "
                         "<file> to get a key to log in with")
    shown = printable(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ProxyError(f"job {job}: its key pair file {shown} is missing") from None
    except OSError as err:
        raise ProxyError(f"job {job}: cannot use its key pair file {shown}: {err.strerror}") from None
    if mode & 0o077:
        raise ProxyError(f"job {job}: refusing its key pair file {shown}: it is readable by "
                         f"others (mode {mode & 0o777:04o}); run: chmod 600 {shown}")
    if not os.access(path, os.R_OK):
        raise ProxyError(f"job {job}: cannot read its key pair file {shown}")
    return path


def region_from_url(service_url: str) -> str | None:
    """The region a service host names as ``ec2.<region>.<domain>`` (how HTCondor signs)."""
    labels = (urlsplit(service_url).hostname or "").split(".")
    if len(labels) >= 3 and labels[0] == "ec2" and _REGION.fullmatch(labels[1]):
        return labels[1]
    return None


def _service_url(ad: Mapping[str, Any], job: JobId) -> str:
    kind, _, url = str(ad.get("GridResource") or "").partition(" ")
    url = url.strip()
    if kind != "ec2" or not _SERVICE_URL.fullmatch(url):
        raise ProxyError(f"job {job}: GridResource {printable(repr(ad.get('GridResource')), 200)}"
                         " is not 'ec2 <service URL>'")
    return url


def _instance_id(ad: Mapping[str, Any], job: JobId) -> str:
    """EC2InstanceName, else the last field of GridJobId (``ec2 <url> <token> i-...``)."""
    grid_fields = str(ad.get("GridJobId") or "").split()
    candidates = [str(ad.get("EC2InstanceName") or ""), grid_fields[-1] if len(grid_fields) >= 4 else ""]
    for candidate in candidates:
        if _INSTANCE_ID.fullmatch(candidate):
            return candidate
    raise ProxyError(f"job {job} has no EC2 instance yet (HTCondor has not started one)")


def _ad_path(ad: Mapping[str, Any], attribute: str) -> Path | None:
    value = ad.get(attribute)
    if not value:
        return None
    path = Path(str(value))
    return path if path.is_absolute() else Path(str(ad.get("Iwd") or ".")) / path


def _credentials(ad: Mapping[str, Any], job: JobId) -> dict[str, str]:
    """Keys from the job's credential files; none, or HTCondor's "FROM INSTANCE" (the
    instance role of the machine submitting), means boto3's own chain."""
    if all(ad.get(name) == FROM_INSTANCE for name in ("EC2AccessKeyId", "EC2SecretAccessKey")):
        return {}
    files = {"aws_access_key_id": _ad_path(ad, "EC2AccessKeyId"),
             "aws_secret_access_key": _ad_path(ad, "EC2SecretAccessKey")}
    if not any(files.values()):
        return {}
    if not all(files.values()):
        raise ProxyError(f"job {job} names only one of EC2AccessKeyId and EC2SecretAccessKey")
    return {name: _credential(path, job) for name, path in files.items()}


def _credential(path: Path, job: JobId) -> str:
    """The one key a credential file holds; refused, by the file's name only, when it holds
    anything else (a private key, a config file: nothing of it may reach an error line)."""
    shown = printable(path)
    try:
        with open(path, "rb") as file:
            data = file.read(_CREDENTIAL_FILE_BYTES + 1)
    except OSError as err:
        raise ProxyError(f"job {job}: cannot read its EC2 credential file {shown}: "
                         f"{err.strerror}") from None
    text = data.decode("ascii", errors="replace").strip()
    if not text:
        raise ProxyError(f"job {job}: its EC2 credential file {shown} is empty")
    if len(data) > _CREDENTIAL_FILE_BYTES or not _CREDENTIAL.fullmatch(text):
        raise ProxyError(f"job {job}: its EC2 credential file {shown} does not hold one key "
                         "(a single line of letters, digits and +/=._-)")
    return text


def _ec2_client(ad: Mapping[str, Any], service_url: str, job: JobId) -> Any:
    credentials = _credentials(ad, job)
    import boto3
    from botocore.config import Config
    session = boto3.session.Session(**credentials)
    region = region_from_url(service_url) or session.region_name
    if not region:
        raise ProxyError(f"job {job}: no AWS region: {service_url} does not name one and boto3 "
                         "has none configured (AWS_DEFAULT_REGION or a profile's region)")
    return session.client("ec2", endpoint_url=service_url, region_name=region,
                           config=Config(**_API_TIMEOUTS))


def _describe(client: Any, instance_id: str, job: JobId) -> dict:
    reservations = _call(client, "describe_instances", job, InstanceIds=[instance_id])
    for reservation in reservations.get("Reservations", []):
        for instance in reservation.get("Instances", []):
            if instance.get("InstanceId") == instance_id:
                return instance
    raise ProxyError(f"job {job}: EC2 does not know its instance {instance_id}")


def _console_host_keys(client: Any, instance_id: str, job: JobId) -> list[str]:
    output = _call(client, "get_console_output", job, InstanceId=instance_id).get("Output") or ""
    return cloudinit.host_keys(output)


def _call(client: Any, operation: str, job: JobId, **params: Any) -> dict:
    """One EC2 API call; its failures become one line (never the credentials)."""
    from botocore.exceptions import BotoCoreError, ClientError
    try:
        return getattr(client, operation)(**params)
    except ClientError as err:
        error = err.response.get("Error", {})
        raise ProxyError(f"job {job}: EC2 {operation} failed: "
                         f"{printable(error.get('Code', '?'), 80)}: "
                         f"{printable(error.get('Message', ''))}") from None
    except BotoCoreError as err:
        raise ProxyError(f"job {job}: EC2 {operation} failed: {printable(err)}") from None
