"""Whose job is it: HTCondor's ssh-to-job authorization, applied before anything else runs.

HTCondor's schedd gives a job's starter (GET_JOB_CONNECT_INFO, what condor_ssh_to_job asks
for) only to the job's owner or to a queue super user. Everything else in a job's ad is its
owner's word: any ``+Attribute``, our starter's address, key and login user, GridResource and
the EC2 attributes. So the proxy believes none of it before the same check: the schedd's
immutable ``User``/``Owner`` against the user this process runs as (what HTCondor's FS
authentication maps it to on an access point; a token issued for this user, likewise), else
this machine's QUEUE_SUPER_USERS / QUEUE_ALL_USERS_TRUSTED (root counts as the condor user,
always super).
User names compare as the schedd compares them: the name exactly, a missing domain meaning
UID_DOMAIN, domains without case (a super user's domain may be a dotted prefix). ``param``
is the bindings' ``htcondor2.param`` (typed values; unset names, and names set empty, are
missing).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from condor_job_proxy.common.jobid import JobId
from condor_job_proxy.common.names import printable, user_of_uid

from ..errors import NotAuthorized

DEFAULT_SUPER_USERS = "root, condor"   # HTCondor's QUEUE_SUPER_USERS default on unix


def authorize(job: JobId, ad: Mapping[str, Any], param: Mapping[str, Any]) -> bool:
    """True for this user's own job, False for another's that a queue super user may enter;
    NotAuthorized, in HTCondor's words, for anyone else."""
    me = authenticated_user()
    uid_domain = str(param.get("UID_DOMAIN", ""))
    owner = job_owner(ad)
    if owner and _same_user(owner, me, uid_domain):
        return True
    if param.get("QUEUE_ALL_USERS_TRUSTED", False) is True or \
            is_queue_super_user(me, param, uid_domain):
        return False
    whose = f"it is {printable(owner, 80)}'s job" if owner else "its ad names no owner"
    raise NotAuthorized(f"{me} is not authorized for access to the starter for job {job}: "
                        f"{whose}, and {me} is not a queue super user of the pool")


def authenticated_user() -> str:
    """The login name of this process's uid, as HTCondor's authentication would map it."""
    name = user_of_uid(os.getuid())
    if name is None:
        raise NotAuthorized(f"uid {os.getuid()} has no valid login name in this machine's "
                            "passwd, so HTCondor could not tell whose jobs are yours")
    return name


def job_owner(ad: Mapping[str, Any]) -> str:
    """The schedd's word for the job's owner: ``User`` (user@domain), else ``Owner``; both are
    attributes no job owner can change."""
    user, owner = ad.get("User"), ad.get("Owner")
    if isinstance(user, str) and "@" in user:
        return user
    return owner if isinstance(owner, str) else ""


def is_queue_super_user(me: str, param: Mapping[str, Any], uid_domain: str) -> bool:
    """root, or a QUEUE_SUPER_USERS entry: a name, name@domain, or %group (its member list)."""
    if me == "root":
        return True
    entries = str(param.get("QUEUE_SUPER_USERS", DEFAULT_SUPER_USERS))
    for entry in entries.replace(",", " ").split():
        if entry.startswith("%"):
            if _in_group(me, entry[1:]):
                return True
        elif _same_user(entry, me, uid_domain, prefix=True):
            return True
    return False


def _same_user(first: str, second: str, uid_domain: str, prefix: bool = False) -> bool:
    name1, at1, domain1 = first.partition("@")
    name2, at2, domain2 = second.partition("@")
    if name1 != name2:
        return False
    domain1 = (domain1 if at1 and domain1 != "." else uid_domain).lower()
    domain2 = (domain2 if at2 and domain2 != "." else uid_domain).lower()
    if domain1 == domain2:
        return True
    short, long = sorted((domain1, domain2), key=len)
    return prefix and long.startswith(short + ".")


def _in_group(me: str, group: str) -> bool:
    """Listed in the group's member list (HTCondor looks at no primary group)."""
    import grp
    try:
        return me in grp.getgrnam(group).gr_mem
    except KeyError:
        return False
