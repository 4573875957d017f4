"""Stand-in ``Submit`` and ``SubmitResult``, and the job ad a submit description becomes.

As in the bindings: ``Submit(input=None, queue=None, **kwargs)`` takes a dict (values str,
or int/float/bool/Path turned into strings; no "queue" key) or submit-language text, and
stores every value as a string (``__setitem__`` refuses anything else). Only the commands
condor-job-proxy submits are turned into attributes; the rest are kept as submit macros,
which is what condor_submit does with a command it does not know.
"""
from __future__ import annotations

import getpass
import os
import re
import time
from collections.abc import MutableMapping
from pathlib import Path

from . import _pool


class _DefaultItemData:
    pass


DefaultItemData = _DefaultItemData()
# docker and container are no universes of their own in the ad: condor_submit keeps JobUniverse
# 5 and marks the job (``_container_attributes``).
_UNIVERSES = {"vanilla": 5, "scheduler": 7, "local": 12, "grid": 9, "docker": 5, "container": 5}
_NOT_IMAGES = ("instance://", "library://", "shub://")   # container_image prefixes it refuses
_REQUESTS = {"request_cpus": "RequestCpus", "request_memory": "RequestMemory",
             "request_disk": "RequestDisk", "request_gpus": "RequestGPUs"}
_UNITS = {"": 1, "k": 1 / 1024, "kb": 1 / 1024, "m": 1, "mb": 1, "g": 1024, "gb": 1024,
          "t": 1024 * 1024, "tb": 1024 * 1024}


class Submit(MutableMapping):
    def __init__(self, input=None, queue: str = None, **kwargs) -> None:
        self._values: dict[str, str] = {}
        if isinstance(input, dict):
            for key, value in input.items():
                if not isinstance(key, str):
                    raise TypeError("key must be a string")
                if key.casefold() == "queue":
                    raise ValueError("the queue statement can not be specified in a dictionary")
                if isinstance(value, (bool, int, float, Path)):
                    value = str(value)
                elif not isinstance(value, str):
                    raise TypeError("value must be a string")
                self._values[key] = value
        elif isinstance(input, str):
            self._parse(input)
        elif input is not None:
            raise TypeError("input must be a dictionary mapping string to strings, a string, "
                            "or None")
        self.update(kwargs)

    def _parse(self, text: str) -> None:
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or line.lower().startswith("queue"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"stand-in Submit cannot parse {line!r}")
            self._values[key.strip()] = value.strip()

    def __getitem__(self, key: str) -> str:
        if not isinstance(key, str):
            raise TypeError("key must be a string")
        return self._values[key]

    def __setitem__(self, key: str, value: str) -> None:
        if not isinstance(key, str):
            raise TypeError("key must be a string")
        if not isinstance(value, str):
            raise TypeError("value must be a string")
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("Submit object keys can not be removed, but the empty string "
                                  "is defined to have no effect.")

    def __iter__(self):
        return iter(list(self._values))

    def __len__(self) -> int:
        return len(self._values)

    def __str__(self) -> str:
        return "".join(f"{key} = {value}\n" for key, value in self._values.items())


class SubmitResult:
    def __init__(self, clusterID, procID, num_procs, clusterAd, spooled_proc_ads=None) -> None:
        self._cluster, self._first_proc = clusterID, procID
        self._num_procs, self._clusterad = num_procs, clusterAd

    def cluster(self) -> int:
        return self._cluster

    def clusterad(self):
        return self._clusterad

    def first_proc(self) -> int:
        return self._first_proc

    def num_procs(self) -> int:
        return self._num_procs

    def __int__(self) -> int:
        return self._cluster


def job_ad_from(description: Submit, cluster: int) -> dict:
    """The idle job's ad, as the schedd would hold it for the commands we submit."""
    from . import HTCondorException
    values = {key.lower(): value for key, value in description.items()}
    if "executable" not in values:
        raise HTCondorException("Submit:0:No 'executable' parameter was provided")
    universe = values.get("universe", "vanilla").lower()
    if universe not in _UNIVERSES:
        raise HTCondorException(f"Submit:0:I don't know about the '{universe}' universe.")
    ad = {"ClusterId": cluster, "ProcId": 0, "Owner": getpass.getuser(), "JobStatus": 1,
          "QDate": int(time.time()), "EnteredCurrentStatus": int(time.time()),
          "JobUniverse": _UNIVERSES[universe], "Cmd": values["executable"],
          "Arguments": _new_arguments(values.get("arguments", "")),
          "TransferExecutable": values.get("transfer_executable", "true").lower() != "false",
          "RequestCpus": 1, "RequestMemory": 128, "RequestDisk": 1024,
          "Iwd": values.get("initialdir") or os.getcwd()}
    for command, attribute in (("output", "Out"), ("error", "Err")):
        # condor_submit expands the job's own macros and keeps the path as written; the
        # schedd reads a relative one against Iwd. Without the command: /dev/null.
        ad[attribute] = _expand(values.get(command) or "/dev/null", cluster)
    for command, attribute in _REQUESTS.items():
        if command in values:
            ad[attribute] = _amount(values[command], command)
    ad.update(_container_attributes(universe, values))
    for key, value in description.items():
        if key.startswith("+") or key.lower().startswith("my."):
            try:
                ad[key[1:] if key.startswith("+") else key[3:]] = _pool.parse_literal(value)
            except ValueError as err:
                raise HTCondorException(f"Submit:0:{err}") from None
    return ad


def _container_attributes(universe: str, values: dict[str, str]) -> dict:
    """What condor_submit (SetUniverse, SetExecutable) writes for docker_image and
    container_image, with its error messages: a docker universe job gets WantDocker and
    DockerImage; a container universe job (or a vanilla one naming an image) WantContainer,
    the image, and its kind (WantDockerImage for docker:, WantSIF for .sif, WantSandboxImage
    for anything else, a directory)."""
    from . import HTCondorException
    docker = values.get("docker_image", "").strip()
    container = values.get("container_image", "").strip()
    if universe == "docker":
        if container:
            raise HTCondorException(
                "Submit:0:docker universe does not allow use of container_image.")
        if not docker:
            raise HTCondorException("Submit:0:docker jobs require a docker_image")
        return {"WantDocker": True, "DockerImage": docker}
    if universe not in ("container", "vanilla"):
        return {}
    if docker and container:
        raise HTCondorException("Submit:0:cannot declare both docker_image and container_image")
    if universe == "container" and not (docker or container):
        raise HTCondorException("Submit:0:container jobs require a container_image or docker_image")
    if docker:
        return {"WantContainer": True, "DockerImage": docker, "WantDockerImage": True}
    if not container:
        return {}
    if container.startswith(_NOT_IMAGES):
        raise HTCondorException(f"Submit:0:'{container}' is not a valid container image")
    kind = "WantDockerImage" if container.startswith("docker:") else \
        "WantSIF" if container.endswith(".sif") else "WantSandboxImage"
    return {"WantContainer": True, "ContainerImage": container, kind: True}


def _expand(text: str, cluster: int) -> str:
    """$(Cluster), $(ClusterId), $(Process), $(ProcId) (case-insensitive), as condor_submit."""
    names = {"cluster": cluster, "clusterid": cluster, "process": 0, "procid": 0}
    return re.sub(r"\$\(([A-Za-z]+)\)",
                  lambda m: str(names.get(m.group(1).lower(), m.group(0))), text)


def _amount(text: str, command: str) -> int:
    from . import HTCondorException
    match = re.fullmatch(r"\s*([0-9]+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise HTCondorException(f"Submit:0:{command} = {text} is not a valid amount")
    scale = _UNITS[match.group(2).lower()] if command == "request_memory" else 1
    return max(1, int(int(match.group(1)) * scale)) if scale != 1 else int(match.group(1))


def _new_arguments(text: str) -> str:
    """The new argument syntax: one double-quoted string, words in single quotes."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('""', '"')
    return text
