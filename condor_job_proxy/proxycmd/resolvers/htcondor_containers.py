"""HTCondor's container and docker universe jobs, read from their ad: where the pool's own
condor_ssh_to_job puts a session in them (for doctor).

condor_submit keeps JobUniverse = 5 (vanilla) for both universes and marks the job instead:
``universe = docker`` sets WantDocker and DockerImage; ``universe = container`` (or a vanilla
job with container_image or docker_image) sets WantContainer, the image in ContainerImage (or
DockerImage) and its kind, WantDockerImage (a docker:// repository), WantSIF (a .sif file) or
WantSandboxImage (an unpacked directory). Pools that put jobs into Apptainer by their own
policy read the image from an attribute the user sets, SingularityImage by convention (the
OSPool's). HTCondor's tool enters the container for shells and commands only
(condor_docker_enter for Docker, condor_nsenter for Apptainer); everything else a session does
runs in the sshd it starts on the execute host, beside the container.
"""
from __future__ import annotations

from condor_job_proxy.common.names import printable

CONTAINER_ATTRIBUTES = ("WantDocker", "DockerImage", "WantContainer", "ContainerImage",
                        "WantDockerImage", "WantSIF", "WantSandboxImage", "SingularityImage")
_DOCKER = ("Docker", "condor_docker_enter")
_APPTAINER = ("Apptainer", "condor_nsenter")


def container_line(ad) -> str | None:
    """doctor's line on a container job reached through HTCondor's own tool; None for a job
    HTCondor runs without a container."""
    found = _runtime(ad)
    if found is None:
        return None
    universe, (runtime, enter), image = found
    return (f"container: a {universe} job (image {printable(repr(image), 200)}), run in {runtime}: "
            f"HTCondor's condor_ssh_to_job takes shells and commands into the container "
            f"({enter}); sftp, scp, rsync and port forwards (-L, -R, -D) land on the execute "
            "host beside it, not in the container. A job that runs condor-job-starter as its "
            "wrapper inside the container gets all of them inside.")


def _runtime(ad) -> tuple[str, tuple[str, str], str] | None:
    """(universe, (runtime, how HTCondor enters it), image) of a container job."""
    if _true(ad, "WantDocker"):
        return "docker universe", _DOCKER, _text(ad, "DockerImage")
    image = _text(ad, "ContainerImage") or _text(ad, "DockerImage")
    if _true(ad, "WantContainer"):
        if _true(ad, "WantSIF") or _true(ad, "WantSandboxImage"):
            return "container universe", _APPTAINER, image
        # A docker:// image runs under Docker where the execute node has it, else Apptainer.
        both = (f"{_DOCKER[0]} or {_APPTAINER[0]}, as the execute node has",
                f"{_DOCKER[1]} or {_APPTAINER[1]}")
        return "container universe", both, image
    if _text(ad, "SingularityImage"):
        return "vanilla universe (SingularityImage)", _APPTAINER, _text(ad, "SingularityImage")
    return None


def _true(ad, name: str) -> bool:
    value = ad.get(name)
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _text(ad, name: str) -> str:
    value = ad.get(name)
    return value if isinstance(value, str) else ""
