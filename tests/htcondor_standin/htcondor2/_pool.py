"""The stand-in pool's state: one JSON file of schedds and their job ads.

Tests write it to set up jobs; the stand-in bindings read it; the stand-in condor_chirp
updates it the way a real chirp update reaches the schedd's copy of the job ad. Its path is
``$HTCONDOR_STANDIN_POOL``. Layout::

    {"collector": "cm.test", "local_schedd": "ap1.test",
     "schedds": {"ap1.test": {"address": "<192.0.2.1:9618>", "jobs": [{"ClusterId": 5, ...}]}},
     "config": {"QUEUE_SUPER_USERS": "root, condor, alice"}}

"config" is the pool's HTCondor configuration (condor_config's NAME = value lines), shared by
the stand-in bindings' ``param`` and the stand-in schedd's authorization.
"""
from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import re
import socket
from pathlib import Path

POOL_ENV = "HTCONDOR_STANDIN_POOL"
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"'}


def pool_file() -> Path:
    return Path(os.environ[POOL_ENV])


def load(path: Path | None = None) -> dict:
    return json.loads((path or pool_file()).read_text())


@contextlib.contextmanager
def editing(path: Path | None = None):
    """Read-modify-write the pool file under a lock; yields the state to change in place."""
    path = path or pool_file()
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = load(path)
        yield state
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        temp.write_text(json.dumps(state, indent=1))
        os.replace(temp, path)


def parse_literal(text: str):
    """A ClassAd literal as condor_chirp and the schedd accept it: string, integer, boolean."""
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    if re.fullmatch(r'"(?:[^"\\]|\\.)*"', text):
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), text[1:-1])
    raise ValueError(f"stand-in cannot parse ClassAd value {text!r}")


def matches(ad: dict, constraint: str) -> bool:
    """Evaluate a conjunction of ``Attr == literal`` (the only constraints our backend sends).

    String comparison with ``==`` is case-insensitive, as in ClassAds; a missing attribute is
    undefined, which never matches. Anything else is refused, so a new kind of query fails
    loudly instead of silently matching.
    """
    if constraint.strip() in ("True", "true"):
        return True
    lowered = {key.lower(): value for key, value in ad.items()}
    for term in constraint.split("&&"):
        match = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*==\s*(.+?)\s*", term)
        if not match:
            raise ValueError(f"stand-in cannot evaluate constraint {constraint!r}")
        wanted, actual = parse_literal(match.group(2)), lowered.get(match.group(1).lower())
        if isinstance(wanted, str) and isinstance(actual, str):
            if wanted.lower() != actual.lower():
                return False
        elif type(wanted) is not type(actual) or wanted != actual:
            return False
    return True


# --- configuration and the schedd's authorization --------------------------------------------

# The defaults and types (param_info.in, HTCondor 25.x) of the parameters the stand-in knows;
# any other name is a string, present only when the pool's "config" sets it.
_PARAM_DEFAULTS = {"QUEUE_SUPER_USERS": "root, condor", "QUEUE_ALL_USERS_TRUSTED": False,
                   "UID_DOMAIN": None,   # None: $(FULL_HOSTNAME)
                   "CONDOR_SSH_TO_JOB_FAKE_PASSWD_ENTRY": True}
_TRUE = ("true", "yes", "1")


def param_value(name: str):
    """``htcondor2.param[name]`` as the bindings return it: a bool for a boolean parameter, a
    string otherwise; KeyError when unset or set empty (the bindings pretend those are unset)."""
    config = load().get("config", {})
    known = {key.upper(): value for key, value in config.items()}
    if name.upper() in known:
        value = str(known[name.upper()]).strip()
    elif name.upper() in _PARAM_DEFAULTS:
        default = _PARAM_DEFAULTS[name.upper()]
        value = socket.getfqdn() if default is None else default
    else:
        raise KeyError(name)
    if isinstance(_PARAM_DEFAULTS.get(name.upper()), bool):
        return value if isinstance(value, bool) else value.lower() in _TRUE
    if value == "":
        raise KeyError(name)
    return value


def may_access(ad: dict, user: str) -> bool:
    """The schedd's UserCheck2 for GET_JOB_CONNECT_INFO: the job's owner (User, else Owner at
    UID_DOMAIN) is the authenticated user, or the user is a queue super user (root always; a
    QUEUE_SUPER_USERS name, name@domain or %group member), or QUEUE_ALL_USERS_TRUSTED."""
    domain = param_value("UID_DOMAIN").lower()
    owner = ad.get("User") if "@" in str(ad.get("User", "")) else f"{ad.get('Owner')}@{domain}"
    name, _, owner_domain = str(owner).partition("@")
    if name == user and owner_domain.lower() == domain:
        return True
    if user == "root" or param_value("QUEUE_ALL_USERS_TRUSTED"):
        return True
    for entry in param_value("QUEUE_SUPER_USERS").replace(",", " ").split():
        if entry.startswith("%"):
            try:
                if user in grp.getgrnam(entry[1:]).gr_mem:
                    return True
            except KeyError:
                continue
        elif entry.partition("@")[0] == user and _domains_match(entry.partition("@")[2] or domain,
                                                                  domain):
            return True
    return False


def _domains_match(first: str, second: str) -> bool:
    """COMPARE_DOMAIN_PREFIX: equal without case, or one a dotted prefix of the other."""
    short, long = sorted((first.lower(), second.lower()), key=len)
    return short == long or long.startswith(short + ".")


# --- parallel-universe jobs (shared/reference/condor_ssh_to_job-behaviour.md) ----------------

PARALLEL_UNIVERSE = 11


def parallel_job_ad(cluster: int, owner: str, slots: list[str], status: int = 2) -> dict:
    """A ``universe = parallel``, ``machine_count = len(slots)`` job as the schedd holds it: one
    ad (proc 0) for all nodes. Once the dedicated scheduler has started it, ``RemoteHosts``
    lists each node's slot in node order, ``AllRemoteHosts`` the cluster's, ``CurrentHosts``
    counts them (schedd's dedicated_scheduler.cpp); idle, only Min/MaxHosts say how many."""
    ad = {"ClusterId": cluster, "ProcId": 0, "Owner": owner, "JobStatus": status,
          "JobUniverse": PARALLEL_UNIVERSE, "MinHosts": len(slots), "MaxHosts": len(slots),
          "CurrentHosts": 0, "Cmd": "/usr/bin/sleep", "Arguments": "600",
          "JobCurrentStartDate": 1700000000}
    if status == 2:
        ad.update(RemoteHosts=",".join(slots), AllRemoteHosts=",".join(slots),
                  CurrentHosts=len(slots))
    return ad


def _check_parallel_ad(ad: dict) -> None:
    """Refuse a running parallel job's ad without the node list the dedicated scheduler writes
    (one slot per node in RemoteHosts, CurrentHosts of them, AllRemoteHosts)."""
    if ad.get("JobUniverse") != PARALLEL_UNIVERSE or ad.get("JobStatus") != 2:
        return
    hosts = ad.get("RemoteHosts")
    if not isinstance(hosts, str) or not isinstance(ad.get("AllRemoteHosts"), str) \
            or len(hosts.split(",")) != ad.get("CurrentHosts"):
        raise ValueError(f"stand-in: running parallel job {ad.get('ClusterId')}."
                         f"{ad.get('ProcId')} has no RemoteHosts/AllRemoteHosts/CurrentHosts "
                         "as the dedicated scheduler writes them")


# --- EC2 grid jobs (shared/reference/ec2-grid-jobs.md) ------------------------------------------

GRID_UNIVERSE = 9
_EC2_REQUIRED = ("EC2AccessKeyId", "EC2SecretAccessKey", "EC2AmiID")   # condor_submit refuses without
_FROM_INSTANCE = "FROM INSTANCE"


def ec2_job_ad(cluster: int, owner: str, service_url: str, instance: dict, key_pair_file: str,
               credential_files: tuple[str, str], iwd: str, status: int = 2,
               client_token: str = "7c8dc2a9-0ab3-4c3b-9a3b-40e0c0ffee00") -> dict:
    """A running EC2 job's ad as condor_submit and the gridmanager leave it: ``instance`` is
    EC2's description (InstanceId, ImageId, PublicDnsName, KeyName). Paths are absolute, as
    condor_submit makes them; no attribute names the instance's login user."""
    access, secret = credential_files
    return {"ClusterId": cluster, "ProcId": 0, "Owner": owner, "JobStatus": status,
            "JobUniverse": GRID_UNIVERSE, "Cmd": "EC2_instance", "Iwd": iwd,
            "JobCurrentStartDate": 1700000000,
            "GridResource": f"ec2 {service_url}",
            "GridJobId": f"ec2 {service_url} {client_token} {instance['InstanceId']}",
            "EC2InstanceName": instance["InstanceId"],
            "EC2RemoteVirtualMachineName": instance["PublicDnsName"],
            "EC2AmiID": instance["ImageId"], "EC2InstanceType": "m1.small",
            "EC2KeyPair": instance["KeyName"], "EC2KeyPairFile": key_pair_file,
            "EC2AccessKeyId": access, "EC2SecretAccessKey": secret}


def check_ad(ad: dict) -> None:
    """Refuse an EC2 job ad no real schedd could hold (condor_submit would have refused the job,
    or the gridmanager writes it otherwise), so no test passes on a shape HTCondor never shows.
    A job of another universe may carry any GridResource and EC2 attributes its owner chose
    (``+GridResource = ...`` in a vanilla submit file): condor_submit checks them only for
    ``universe = grid``, and JobUniverse cannot change after submission."""
    _check_parallel_ad(ad)
    resource = ad.get("GridResource")
    if not (isinstance(resource, str) and resource.startswith("ec2 ")):
        return
    if ad.get("JobUniverse") != GRID_UNIVERSE:
        return
    job = f"{ad.get('ClusterId')}.{ad.get('ProcId')}"
    for name in _EC2_REQUIRED:
        if not isinstance(ad.get(name), str) or not ad[name]:
            raise ValueError(f"stand-in: condor_submit refuses EC2 job {job} without {name}")
    for name in ("EC2AccessKeyId", "EC2SecretAccessKey", "EC2KeyPairFile"):
        value = ad.get(name)
        if value is not None and value != _FROM_INSTANCE and not os.path.isabs(str(value)):
            raise ValueError(f"stand-in: {name} of job {job} is not an absolute path "
                             "(condor_submit writes full paths)")
    fields = str(ad.get("GridJobId") or "").split(" ")
    if len(fields) == 4 and (fields[1] != resource[4:] or ad.get("EC2InstanceName") != fields[3]):
        raise ValueError(f"stand-in: GridJobId of job {job} does not match its GridResource "
                         "and EC2InstanceName")
