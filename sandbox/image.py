"""Building the sandbox image, with or without a container registry.

With a registry, ``sandbox/Dockerfile`` is built on ``python:3.12-slim``. When the pull
fails (no registry reachable), the base is made offline: ``debootstrap --variant=minbase``
of Debian bookworm with Python, pytest, git and procps, imported with ``docker import``
as ``firstmate-sandbox-base:bookworm``; the same Dockerfile is then built on it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from sandbox.container import DOCKER_ERRORS
from sandbox.errors import DockerUnavailable, ImageError

REGISTRY_BASE = "python:3.12-slim"
OFFLINE_BASE = "firstmate-sandbox-base:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
_PACKAGES = "python3,python3-pytest,git,ca-certificates,procps"
DOCKERFILE = Path(__file__).with_name("Dockerfile")

Say = Callable[[str], None]


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    except DOCKER_ERRORS as exc:
        raise DockerUnavailable(f"cannot inspect image {tag!r}: {exc}") from exc
    return True


def build_image(
    client: docker.DockerClient,
    tag: str,
    *,
    base: str | None = None,
    offline: bool = False,
    mirror: str = DEBIAN_MIRROR,
    say: Say = lambda _: None,
) -> str:
    """Build ``tag`` from the sandbox Dockerfile; return the image id (its digest).

    ``base`` forces a base image; ``offline`` skips the registry and builds the base
    with debootstrap (needs root and the ``debootstrap`` command).
    """
    if base is None:
        base = None if offline else _pull(client, REGISTRY_BASE, say)
        if base is None:
            base = _offline_base(client, mirror, say)
    say(f"building {tag} on {base}")
    try:
        with DOCKERFILE.open("rb") as dockerfile:
            image, _ = client.images.build(
                fileobj=dockerfile,
                tag=tag,
                buildargs={"BASE": base},
                rm=True,
                forcerm=True,
                pull=False,
            )
    except docker.errors.BuildError as exc:
        lines = "".join(str(x.get("stream", x.get("error", ""))) for x in exc.build_log)
        raise ImageError(f"building {tag} failed: {exc.msg}\n{lines[-2000:]}") from exc
    except DOCKER_ERRORS as exc:
        raise ImageError(f"building {tag} failed: {exc}") from exc
    say(f"built {tag}: {image.id}")
    return str(image.id)


def _pull(client: docker.DockerClient, ref: str, say: Say) -> str | None:
    if image_exists(client, ref):
        return ref
    say(f"pulling {ref}")
    try:
        client.images.pull(ref)
    except DOCKER_ERRORS as exc:
        say(f"cannot pull {ref} ({str(exc).splitlines()[0][:200]}); building the base offline")
        return None
    return ref


def _offline_base(client: docker.DockerClient, mirror: str, say: Say) -> str:
    if image_exists(client, OFFLINE_BASE):
        say(f"using the offline base {OFFLINE_BASE}")
        return OFFLINE_BASE
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ImageError(
            "no registry reachable and `debootstrap` is not installed: "
            "apt-get install debootstrap (as root), or pass a base image you have"
        )
    with tempfile.TemporaryDirectory(prefix="firstmate-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        say(f"debootstrap --variant=minbase bookworm from {mirror} (about a minute)")
        _run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={_PACKAGES}",
                "bookworm",
                str(root),
                mirror,
            ],
            "debootstrap",
        )
        say(f"importing the root filesystem as {OFFLINE_BASE}")
        _import(client, root)
    return OFFLINE_BASE


def _import(client: docker.DockerClient, root: Path) -> None:
    with subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE
    ) as tar:
        try:
            repo, tag = OFFLINE_BASE.split(":")
            client.api.import_image_from_stream(tar.stdout, repository=repo, tag=tag)
        except DOCKER_ERRORS as exc:
            tar.kill()
            raise ImageError(f"docker import of the base failed: {exc}") from exc
    if tar.returncode != 0:
        raise ImageError(f"tar of the base root filesystem failed (exit {tar.returncode})")


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise ImageError(f"{what} failed (exit {proc.returncode}):\n{tail}")
