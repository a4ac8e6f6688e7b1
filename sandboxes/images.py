"""Sandbox images: ``images/<name>/Dockerfile`` for registry users, and an offline builder.

Each image is described once, by ``images/<name>/packages.txt`` (Debian packages). The Dockerfile
installs them on ``debian:bookworm-slim``; :func:`build_offline` installs the same packages into a
``debootstrap`` rootfs and ``docker import``s it, which needs only a Debian mirror (about a minute
for the python image here). Both add user 1000 ``sandbox`` and tag ``agentgym/sandbox-<name>:N``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["IMAGES_DIR", "IMAGE_VERSION", "build_dockerfile", "build_offline", "image_names", "image_present",
           "image_tag", "packages"]

IMAGES_DIR = Path(__file__).parent / "images"
IMAGE_VERSION = "1"  # bump when a recipe changes, so cached images are rebuilt
DEFAULT_MIRROR = "http://deb.debian.org/debian"
IMPORT_CHANGES = ("USER 1000:1000", "WORKDIR /workspace", "ENV LANG=C.UTF-8", 'CMD ["python3"]')
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info", "var/cache/apt",
        "var/lib/apt/lists")


def image_names() -> list[str]:
    """Images that have a recipe under ``images/``."""
    return sorted(p.parent.name for p in IMAGES_DIR.glob("*/packages.txt"))


def image_tag(name: str) -> str:
    return f"agentgym/sandbox-{name}:{IMAGE_VERSION}"


def packages(name: str) -> list[str]:
    path = IMAGES_DIR / name / "packages.txt"
    if not path.is_file():
        raise ValueError(f"no image recipe {name!r}; known: {', '.join(image_names())}")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def image_present(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.api.inspect_image(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def build_offline(name: str, *, tag: str | None = None, mirror: str = DEFAULT_MIRROR, suite: str = "bookworm",
                  log: Callable[[str], None] = print) -> str:
    """Build image ``name`` with debootstrap and ``docker import`` (root, debootstrap, docker CLI)."""
    tag = tag or image_tag(name)
    wanted = packages(name)
    missing = [tool for tool in ("debootstrap", "docker", "chroot", "tar") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"the offline build needs {', '.join(missing)} on PATH")
    if os.geteuid() != 0:
        raise RuntimeError("debootstrap needs root (run the build with sudo)")
    with tempfile.TemporaryDirectory(prefix="agentgym-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log(f"debootstrap {suite} with {', '.join(wanted)} from {mirror}")
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(wanted)}", suite, str(rootfs),
                        mirror], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["chroot", str(rootfs), "useradd", "-u", "1000", "-m", "-d", "/home/sandbox", "-s", "/bin/sh",
                        "sandbox"], check=True)
        for rel in TRIM:
            shutil.rmtree(rootfs / rel, ignore_errors=True)
        (rootfs / "workspace").mkdir(exist_ok=True)
        log(f"docker import as {tag}")
        changes = [arg for change in IMPORT_CHANGES for arg in ("--change", change)]
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", *changes, "-", tag], stdin=tar.stdout, check=True,
                       stdout=subprocess.DEVNULL)
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError("tar of the rootfs failed")
    return tag


def build_dockerfile(name: str, *, tag: str | None = None, client: Any = None) -> str:
    """Build image ``name`` from its Dockerfile (needs a registry for the base image)."""
    from .engine import docker_client

    tag = tag or image_tag(name)
    packages(name)  # validates the name
    (client or docker_client()).images.build(path=str(IMAGES_DIR / name), tag=tag, rm=True)
    return tag
