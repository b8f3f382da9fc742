"""The docker runtime's images, built on this machine (no container registry is needed).

`base` is Debian bookworm made with debootstrap (minbase) and imported; every component image
is an ordinary build FROM it (or FROM `java`), from `compose/images/<name>/Dockerfile`, that
installs Debian packages over `--network host` and copies what bin/setup already fetched (the
Maven jars, the Toxiproxy binary) or the repository holds (the target's code, the component
configuration). An image is tagged `feedlab/<name>:<hash>`, the hash of everything it is made
from (its Dockerfile, its parent's tag, every file of its build context), so a build is reused
as long as its inputs hold and redone when one changes; old tags stay until `docker image prune`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, ImageNotFound

from harness.paths import REPO, cache_dir
from harness.runtime.component import CONF

REPOSITORY = "feedlab"
LATEST = "latest"   # also on every image ensure() returns: what compose/docker-compose.yml names
DOCKERFILES = REPO / "compose" / "images"
LABEL = "feedlab.image"

# The base image's recipe: its tag is the hash of these, so changing one rebuilds everything.
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP_VARIANT = "minbase"

Progress = Callable[[str], None]


class ImageError(RuntimeError):
    pass


@dataclass(frozen=True)
class ImageSpec:
    """One component image: its parent and its build context (path in the context → source)."""

    name: str
    parent: str
    context: tuple[tuple[str, Path], ...] = ()

    @property
    def dockerfile(self) -> Path:
        return DOCKERFILES / self.name / "Dockerfile"


def specs() -> list[ImageSpec]:
    """Every component image, parents before children."""
    jars = cache_dir() / "jars"
    return [
        ImageSpec("redis", "base"),
        ImageSpec("nginx", "base"),
        ImageSpec("prometheus", "base"),
        ImageSpec("exporters", "base"),
        ImageSpec("toxiproxy", "base", (("bin/toxiproxy-server", cache_dir() / "bin" / "toxiproxy-server"),)),
        ImageSpec("java", "base"),
        ImageSpec("kafka", "java", (("jars/kafka", jars / "kafka"), ("jars/jmx", jars / "jmx"), ("conf", CONF))),
        ImageSpec("cassandra", "java",
                  (("jars/cassandra", jars / "cassandra"), ("jars/jmx", jars / "jmx"), ("conf", CONF))),
        ImageSpec("feed", "base", (("wheels", feed_wheels_dir()), ("targets", REPO / "targets"))),
    ]


# The reference target's own dependencies (a subset of pyproject's), at requirements.lock's
# versions. pip downloads them here, as built wheels for the image's Python (Debian bookworm's
# CPython 3.11, glibc 2.36, x86-64) whatever this machine's Python is; it reaches PyPI with this
# machine's settings (a build inside a container would need its certificate authorities as
# well), and the feed image installs them from its build context without a network.
# pip evaluates the packages' markers for this machine's interpreter, not the target's:
# async-timeout, redis's dependency on Pythons before 3.11.3 (Debian's is 3.11.2), is named.
FEED_PACKAGES = ("starlette", "anyio", "uvicorn[standard]", "orjson", "redis[hiredis]", "cassandra-driver",
                 "confluent-kafka", "kafka-python", "prometheus-client", "pyyaml", "pyjwt", "circuitbreaker",
                 "cachetools",
                 "async-timeout==5.0.1")
FEED_PLATFORM = ("--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                 "--abi", "cp311", "--abi", "abi3", "--abi", "none",
                 *(arg for tag in ("manylinux_2_36_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
                                   "manylinux2014_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64", "any")
                   for arg in ("--platform", tag)))


def feed_wheels_dir() -> Path:
    return cache_dir() / "docker" / "feed-wheels"


def feed_wheels(progress: Progress) -> None:
    """The target's wheels, downloaded again when requirements.lock or the lists changed."""
    lock = REPO / "requirements.lock"
    folder = feed_wheels_dir()
    stamp = hashlib.sha256(lock.read_bytes() + " ".join(FEED_PACKAGES + FEED_PLATFORM).encode()).hexdigest()[:16]
    marker = folder / f".made-from-{stamp}"
    if marker.exists():
        return
    progress(f"feed: pip download {len(FEED_PACKAGES)} packages and their dependencies ({lock.name}'s versions)")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                           "--dest", str(folder), *FEED_PLATFORM, "-c", str(lock), *FEED_PACKAGES],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise ImageError(f"feed: pip download failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-1500:]}")
    marker.touch()


def _files(source: Path) -> Iterator[tuple[str, Path]]:
    """(path relative to `source`, file) for a file or every file under a folder, sorted; caches
    of compiled Python are left out (they differ between machines, not in what they run)."""
    if source.is_file():
        yield "", source
        return
    if not source.is_dir():
        raise ImageError(f"{source} is missing (bin/setup fetches it)")
    for path in sorted(source.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield str(path.relative_to(source)), path


@dataclass(frozen=True)
class Built:
    name: str
    tag: str
    built: bool          # False: the tag was there already
    seconds: float


class Images:
    def __init__(self, client: docker.DockerClient, progress: Progress = lambda _m: None) -> None:
        self.client = client
        self.progress = progress
        self._tags: dict[str, str] = {}
        self._specs = {s.name: s for s in specs()}

    @property
    def names(self) -> list[str]:
        return ["base", *self._specs]

    def tag(self, name: str) -> str:
        """`feedlab/<name>:<hash of its inputs>` (computed once per Images)."""
        if name not in self._tags:
            h = hashlib.sha256(f"feedlab-image v1\n{name}\n".encode())
            if name == "base":
                h.update(f"debootstrap --variant={DEBOOTSTRAP_VARIANT} {DEBIAN_SUITE} {DEBIAN_MIRROR}".encode())
            else:
                spec = self._spec(name)
                h.update(self.tag(spec.parent).encode())
                h.update(spec.dockerfile.read_bytes())
                for where, source in spec.context:
                    for rel, path in _files(source):
                        h.update(f"\n{where}/{rel} {path.stat().st_mode:o}\n".encode())
                        h.update(hashlib.sha256(path.read_bytes()).digest())
            self._tags[name] = f"{REPOSITORY}/{name}:{h.hexdigest()[:16]}"
        return self._tags[name]

    def _spec(self, name: str) -> ImageSpec:
        if name not in self._specs:
            raise ImageError(f"no image named {name!r}; known: {', '.join(self.names)}")
        return self._specs[name]

    def exists(self, name: str) -> bool:
        try:
            self.client.images.get(self.tag(name))
            return True
        except ImageNotFound:
            return False

    def ensure(self, names: list[str] | None = None, *, rebuild: bool = False) -> list[Built]:
        """Every image named (all by default) and its parents, built where missing, and also
        tagged `feedlab/<name>:latest`; `rebuild` builds them all again from nothing (no layer of
        an earlier build reused)."""
        wanted = names or self.names
        order: list[str] = []

        def add(name: str) -> None:
            if name != "base":
                add(self._spec(name).parent)
            if name not in order:
                order.append(name)

        for name in wanted:
            add(name)
        if "feed" in order:
            feed_wheels(self.progress)
        out = []
        for name in order:
            t0 = time.monotonic()
            tag = self.tag(name)
            if not rebuild and self.exists(name):
                out.append(Built(name, tag, False, time.monotonic() - t0))
                continue
            self.progress(f"{name}: building {tag}")
            if name == "base":
                self._build_base(tag)
            else:
                self._build(self._spec(name), tag, nocache=rebuild)
            out.append(Built(name, tag, True, time.monotonic() - t0))
            self.progress(f"{name}: built in {out[-1].seconds:.1f} s")
        for name in order:   # the names compose/docker-compose.yml uses: the images of this checkout
            self.client.api.tag(self.tag(name), f"{REPOSITORY}/{name}", LATEST)
        return out

    def _build_base(self, tag: str) -> None:
        """debootstrap into a scratch folder, then `docker import` of its tar."""
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        if not os.path.exists(debootstrap):
            raise ImageError("debootstrap is not installed (bin/setup installs it)")
        if os.geteuid() != 0:
            raise ImageError("building the base image runs debootstrap, which needs root")
        scratch = cache_dir() / "docker" / "base-rootfs"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.progress(f"base: debootstrap {DEBIAN_SUITE} ({DEBOOTSTRAP_VARIANT}) from {DEBIAN_MIRROR}")
            done = subprocess.run([debootstrap, f"--variant={DEBOOTSTRAP_VARIANT}", DEBIAN_SUITE, str(scratch),
                                   DEBIAN_MIRROR], capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                raise ImageError(f"debootstrap failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-1500:]}")
            self.progress("base: importing the root file system")
            tar = scratch.with_suffix(".tar")
            subprocess.run(["tar", "-C", str(scratch), "--numeric-owner", "-cf", str(tar), "."], check=True)
            repo, _, version = tag.partition(":")
            try:
                self.client.api.import_image_from_file(str(tar), repository=repo, tag=version,
                                                       changes=[f"LABEL {LABEL}=base", 'CMD ["/bin/bash"]'])
            except APIError as exc:
                raise ImageError(f"base: docker import failed: {exc}") from exc
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.with_suffix(".tar").unlink(missing_ok=True)
        if not self.exists("base"):
            raise ImageError(f"docker import did not leave {tag}")

    def _build(self, spec: ImageSpec, tag: str, *, nocache: bool = False) -> None:
        with tempfile.TemporaryFile() as context:
            with tarfile.open(fileobj=context, mode="w") as tar:
                tar.add(spec.dockerfile, arcname="Dockerfile")
                for where, source in spec.context:
                    for rel, path in _files(source):
                        tar.add(path, arcname=f"{where}/{rel}" if rel else where)
            context.seek(0)
            lines: list[str] = []
            try:
                for chunk in self.client.api.build(
                        fileobj=context, custom_context=True, tag=tag, buildargs={"BASE": self.tag(spec.parent)},
                        nocache=nocache,
                        network_mode="host", rm=True, forcerm=True, decode=True, labels={LABEL: spec.name}):
                    self._relay(spec.name, chunk, lines)
            except APIError as exc:
                raise ImageError(f"{spec.name}: the build failed: {exc}") from exc
        if not self.exists(spec.name):
            raise ImageError(f"{spec.name}: the build left no {tag}:\n" + "\n".join(lines[-15:]))

    def _relay(self, name: str, chunk: dict[str, Any], lines: list[str]) -> None:
        if "error" in chunk:
            raise ImageError(f"{name}: the build failed: {chunk['error'].strip()}\n" + "\n".join(lines[-15:]))
        text = str(chunk.get("stream", "")).rstrip()
        if text:
            lines.extend(text.splitlines())
            if text.startswith("Step "):
                self.progress(f"{name}: {text}")


def describe(built: list[Built]) -> str:
    made = [b for b in built if b.built]
    return (f"{len(built)} images, {len(made)} built ({sum(b.seconds for b in made):.1f} s), "
            f"{len(built) - len(made)} reused")

