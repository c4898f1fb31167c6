"""`nebula package MODEL`: build a model's container image from its compiled build context.

`nebula compile` writes, per environment, `<build>/<env>/images/<project>-<model>/` (emit/images.py) and
pins `<registry>/<project>-<model>:sha-<hash of that folder>` in the Jobs, Deployments and serverless
packaging it writes next to it. `locate` finds that folder through the environment's manifest.json, checks
that its files still hash to the tag the compiled output pins, and so names the image exactly as the
cluster will pull it. `build_image` builds a context with the Docker Engine (through the docker SDK) when
one answers, else with buildah, which needs no daemon (`--isolation chroot`: no OCI runtime either).

The API returns values and raises `PackageError`; `add_arguments` and `run` are the `nebula package`
command that nebula_compile/cli.py hands over to.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nebula_compile.ir.graph import content_hash
from nebula_compile.ir.manifest import Manifest, read_manifest

EXIT_OK, EXIT_USER, EXIT_USAGE = 0, 1, 2
ENGINES = ("auto", "docker", "buildah")
LOG_TAIL = 40
"""Lines of the build log a failure carries."""
PROBE_TIMEOUT = 3.0
"""Seconds to wait for a Docker engine to answer before trying buildah."""
INSTALL_HINT = (
    "install and start Docker (or set DOCKER_HOST to a running engine), "
    "or install buildah, which needs no daemon (Debian/Ubuntu: apt-get install buildah)"
)

Progress = Callable[[str], None]


class PackageError(Exception):
    """A model cannot be packaged: not compiled, not found, no engine, or its build failed.

    `log` is the tail of the build log when a build ran; `usage` marks a bad argument (exit 2, not 1).
    """

    def __init__(self, message: str, *, log: str = "", usage: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.log = log
        self.usage = usage


@dataclass(frozen=True)
class BuildResult:
    engine: str
    """"docker" or "buildah": the engine that built the image."""
    tag: str
    """The full image reference it was tagged with."""
    image_id: str
    seconds: float


@dataclass(frozen=True)
class ModelImage:
    """A model's compiled build context and the image reference the compiled output pins for it."""

    project: str
    model: str
    environments: tuple[str, ...]
    """The environments whose output pins this image (several when they compile the same context)."""
    context: Path
    ref: str


@dataclass(frozen=True)
class Packaged:
    image: ModelImage
    build: BuildResult


# --- where the image comes from -----------------------------------------------------------------------------


def context_tag(context: Path) -> str:
    """`sha-<hash>` of a build context's files: emit/images.py's `image_tag`, computed from the files on disk.

    The compiler hashes the folder's {name: text} before writing it, so the two agree exactly while the
    folder is as `nebula compile` wrote it; `locate` checks that against the tags the output pins.
    """
    files = {
        path.relative_to(context).as_posix(): path.read_bytes().decode("utf-8")
        for path in sorted(context.rglob("*"))
        if path.is_file()
    }
    return "sha-" + content_hash(files)[:12]


def _environments(build_dir: Path) -> dict[str, Path]:
    compile_hint = "run `nebula compile` first" + ("" if build_dir == Path("build") else f" (with --out {build_dir})")
    if not build_dir.is_dir():
        raise PackageError(f"{build_dir}/ does not exist: nothing is compiled there; {compile_hint}")
    found = {
        folder.name: folder
        for folder in sorted(build_dir.iterdir())
        if folder.is_dir() and (folder / "manifest.json").is_file()
    }
    if not found:
        raise PackageError(f"{build_dir}/ holds no compiled environment (no <env>/manifest.json); {compile_hint}")
    return found


def _manifest(folder: Path) -> Manifest:
    path = folder / "manifest.json"
    try:
        return read_manifest(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValidationError) as err:
        first = str(err).splitlines()[0]
        raise PackageError(f"cannot read {path} ({first}); run `nebula compile` again") from None


def _pinned_tags(folder: Path, repository: str) -> set[str]:
    """The tags of `repository` that the compiled Jobs, Deployments and serverless packaging pin."""
    pattern = re.compile(r"(?<![\w./:-])" + re.escape(repository) + r":(sha-[0-9a-f]{12})(?![0-9a-f])")
    tags: set[str] = set()
    for path in folder.rglob("*"):
        relative = path.relative_to(folder).parts
        if relative[0] == "images" or path.suffix not in (".yaml", ".json") or not path.is_file():
            continue
        tags.update(pattern.findall(path.read_text(encoding="utf-8", errors="replace")))
    return tags


def _image_ref(folder: Path, project: str, model: str, spec: Mapping[str, Any]) -> tuple[Path, str]:
    context = folder / "images" / f"{project}-{model}"
    if not (context / "Dockerfile").is_file():
        raise PackageError(f"{context}/Dockerfile is missing; run `nebula compile` again")
    repository = spec.get("image")
    if not isinstance(repository, str) or not repository:
        raise PackageError(
            f"{folder / 'manifest.json'} names no image for {project}/{model}; run `nebula compile` again"
        )
    try:
        tag = context_tag(context)
    except (OSError, UnicodeDecodeError) as err:
        raise PackageError(f"cannot read {context} ({err}); run `nebula compile` again") from None
    pinned = _pinned_tags(folder, repository)
    if pinned and pinned != {tag}:
        raise PackageError(
            f"{context} is not what `nebula compile` wrote: its files hash to {tag}, but {folder} pins "
            f"{', '.join(sorted(pinned))} (was it edited by hand?); run `nebula compile` again"
        )
    return context, f"{repository}:{tag}"


def locate(model: str, *, build_dir: Path, environment: str | None = None) -> ModelImage:
    """The compiled build context of `model` ("project/model", or "model" when one project has it).

    Without `environment`, every compiled environment is searched; they must agree on the image (they do
    unless an environment was compiled from another version of the config), or one must be chosen.
    """
    project_name, _, model_name = model.rpartition("/")
    if not model_name or "/" in project_name:
        raise PackageError(f"'{model}' is not a model: give MODEL or PROJECT/MODEL", usage=True)
    folders = _environments(build_dir)
    if environment is not None:
        if environment not in folders:
            raise PackageError(
                f"no environment '{environment}' in {build_dir}/: compiled are {', '.join(folders)}", usage=True
            )
        folders = {environment: folders[environment]}
    known: set[str] = set()
    hits: dict[tuple[str, str], list[tuple[str, Path, Mapping[str, Any]]]] = {}
    for env, folder in folders.items():
        for resource in _manifest(folder).resources:
            if resource.kind != "model" or resource.project is None:
                continue
            known.add(f"{resource.project}/{resource.name}")
            if resource.name == model_name and project_name in ("", resource.project):
                hits.setdefault((resource.project, resource.name), []).append((env, folder, resource.spec))
    where = f"{build_dir}/ ({', '.join(folders)})"
    if not hits:
        listing = ", ".join(sorted(known)) if known else "none"
        raise PackageError(
            f"no model '{model}' in {where}; compiled models: {listing} (added it since? run `nebula compile`)",
            usage=True,
        )
    if len(hits) > 1:
        names = ", ".join(f"{p}/{m}" for p, m in sorted(hits))
        raise PackageError(f"'{model}' names several models: {names}; give PROJECT/MODEL", usage=True)
    (project, name), found = next(iter(hits.items()))
    images = [(env, *_image_ref(folder, project, name, spec)) for env, folder, spec in found]
    refs = {ref for _, _, ref in images}
    if len(refs) > 1:
        each = "; ".join(f"{env}: {ref}" for env, _, ref in images)
        raise PackageError(
            f"{project}/{name} compiles to a different image per environment ({each}); choose one with --environment",
            usage=True,
        )
    return ModelImage(project, name, tuple(env for env, _, _ in images), images[0][1], images[0][2])


# --- building ------------------------------------------------------------------------------------------------


class _Log:
    """Build output: each line goes to `progress` as it comes, and the last ones are kept for an error."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.tail: deque[str] = deque(maxlen=LOG_TAIL)

    def line(self, text: str) -> None:
        self.tail.append(text)
        if self.progress is not None:
            self.progress(text)

    def text(self) -> str:
        return "\n".join(self.tail)


def _docker_client(timeout: float) -> tuple[Any, str]:
    """A client of a Docker engine that answered a ping, or None and why not."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock (DOCKER_HOST is unset)"
    try:
        import docker  # type: ignore[import-untyped]
        from docker.errors import DockerException  # type: ignore[import-untyped]
    except ImportError as err:
        return None, f"the docker Python package is not installed ({err}); pip install 'nebula-gitops[runtime]'"
    client = None
    with warnings.catch_warnings():
        # docker-py leaks the socket of a refused unix-socket connection (UnixHTTPConnection.connect): it is
        # collected here, quietly, rather than at some later point where a ResourceWarning would surprise
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env(timeout=timeout)
            client.ping()
        except (DockerException, OSError) as err:  # requests' errors are OSErrors
            why = f"no engine answers at {host}: {err}"
        else:
            return client, ""
        if client is not None:
            client.close()
        gc.collect()
    return None, why


def _engine(engine: str, timeout: float) -> tuple[str, Any]:
    """("docker", client) or ("buildah", path to buildah), as `engine` asks and the machine allows."""
    if engine not in ENGINES:
        raise PackageError(f"unknown engine '{engine}': choose one of {', '.join(ENGINES)}", usage=True)
    tried = []
    if engine in ("auto", "docker"):
        client, why = _docker_client(timeout)
        if client is not None:
            return "docker", client
        if engine == "docker":
            raise PackageError(
                f"cannot build with Docker: {why}; start Docker or set DOCKER_HOST, or build with buildah instead"
            )
        tried.append(f"Docker: {why}")
    buildah = shutil.which("buildah")
    if buildah is not None:
        return "buildah", buildah
    if engine == "buildah":
        raise PackageError(
            "cannot build with buildah: it is not installed (not on PATH); "
            "install it (Debian/Ubuntu: apt-get install buildah) or build with Docker instead"
        )
    tried.append("buildah: not installed (not on PATH)")
    raise PackageError(f"no container engine to build with (tried {'; '.join(tried)}); {INSTALL_HINT}")


def _docker_build(
    client: Any,
    context: Path,
    tag: str,
    log: _Log,
    *,
    dockerfile: str,
    build_args: Mapping[str, str],
    no_cache: bool,
    pull: bool,
) -> str:
    from docker.errors import DockerException

    log.line(f"docker build --tag {tag} --file {dockerfile} {context}  (Docker Engine API)")
    image_id = ""
    pending = ""
    error = ""
    try:
        stream = client.api.build(
            path=str(context),
            tag=tag,
            dockerfile=dockerfile,
            buildargs=dict(build_args),
            nocache=no_cache,
            pull=pull,
            rm=True,
            forcerm=True,
            decode=True,
            timeout=None,  # the probe's short timeout is for answering, not for building
        )
        for chunk in stream:  # read to the end, even after an error, so that the connection is released
            if isinstance(chunk.get("stream"), str):
                *lines, pending = (pending + chunk["stream"]).split("\n")
                for text in lines:
                    log.line(text.rstrip("\r"))
            elif chunk.get("status") and not chunk.get("progressDetail"):  # pulls, without progress bars
                log.line(" ".join(str(chunk[key]) for key in ("id", "status") if chunk.get(key)))
            if "error" in chunk:
                error = str(chunk["error"]).strip()
                log.line(pending + error)
                pending = ""
            aux = chunk.get("aux")
            if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
                image_id = aux["ID"]
        if pending:
            log.line(pending)
        if error:
            raise PackageError(f"docker build of {tag} failed: {error}", log=log.text())
        if not image_id:
            image_id = str(client.images.get(tag).id)
    except (DockerException, OSError) as err:
        raise PackageError(f"docker build of {tag} failed: {err}", log=log.text()) from None
    finally:
        client.close()
    return image_id


def _buildah_build(
    buildah: str,
    context: Path,
    tag: str,
    log: _Log,
    *,
    dockerfile: str,
    build_args: Mapping[str, str],
    no_cache: bool,
    pull: bool,
    isolation: str | None,
) -> str:
    with tempfile.TemporaryDirectory(prefix="nebula-package-") as scratch:
        iidfile = Path(scratch) / "image-id"
        command = [
            buildah,
            "bud",  # `buildah build` since 1.23; `bud` works in every version
            "--isolation",
            isolation or os.environ.get("BUILDAH_ISOLATION") or "chroot",  # needs no runc or crun
            "--layers",
            "--force-rm",  # a failed step's container too, as Docker's forcerm
            "--format",
            "docker",  # the OCI format drops HEALTHCHECK, which the compiled Dockerfile declares
            f"--pull={'always' if pull else 'false'}",  # false: pull the base only when it is missing
            "--iidfile",
            str(iidfile),
            "--tag",
            tag,
            "--file",
            str(context / dockerfile),
        ]
        for key, value in build_args.items():
            command += ["--build-arg", f"{key}={value}"]
        if no_cache:
            command.append("--no-cache")
        command.append(str(context))
        log.line("$ " + " ".join(["buildah", *command[1:]]))
        try:
            with subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
            ) as process:
                assert process.stdout is not None
                for text in process.stdout:
                    log.line(text.rstrip("\r\n"))
                code = process.wait()
        except OSError as err:
            raise PackageError(f"cannot run {buildah}: {err}") from None
        if code != 0:
            raise PackageError(f"buildah build of {tag} failed (exit status {code})", log=log.text())
        return iidfile.read_text(encoding="utf-8").strip()


def build_image(
    context: Path,
    tag: str,
    *,
    engine: str = "auto",
    progress: Progress | None = None,
    build_args: Mapping[str, str] | None = None,
    dockerfile: str = "Dockerfile",
    no_cache: bool = False,
    pull: bool = False,
    isolation: str | None = None,
    probe_timeout: float = PROBE_TIMEOUT,
) -> BuildResult:
    """Build `context` into the image `tag`, streaming the build log to `progress` line by line.

    engine: "docker" (a Docker engine through DOCKER_HOST or the default socket), "buildah", or "auto":
    Docker when an engine answers within `probe_timeout` seconds, else buildah. pull: pull the base even
    when it is present. isolation: buildah's (default BUILDAH_ISOLATION, else chroot). A failed build raises
    PackageError with the tail of its log.
    """
    if not (context / dockerfile).is_file():
        raise PackageError(f"{context / dockerfile} does not exist: not a build context")
    chosen, handle = _engine(engine, probe_timeout)
    log = _Log(progress)
    arguments = dict(build_args or {})
    start = time.monotonic()
    if chosen == "docker":
        image_id = _docker_build(
            handle, context, tag, log, dockerfile=dockerfile, build_args=arguments, no_cache=no_cache, pull=pull
        )
    else:
        image_id = _buildah_build(
            handle,
            context,
            tag,
            log,
            dockerfile=dockerfile,
            build_args=arguments,
            no_cache=no_cache,
            pull=pull,
            isolation=isolation,
        )
    return BuildResult(chosen, tag, image_id, time.monotonic() - start)


def package(
    model: str,
    *,
    build_dir: Path = Path("build"),
    environment: str | None = None,
    engine: str = "auto",
    progress: Progress | None = None,
    no_cache: bool = False,
    pull: bool = False,
) -> Packaged:
    """Build the image of a compiled model under the reference its compiled Deployments and Jobs pin."""
    image = locate(model, build_dir=build_dir, environment=environment)
    build = build_image(image.context, image.ref, engine=engine, progress=progress, no_cache=no_cache, pull=pull)
    return Packaged(image, build)


# --- the command -----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="PROJECT/MODEL, or MODEL when only one project has it")
    parser.add_argument(
        "-e",
        "--environment",
        "--env",
        dest="environment",
        metavar="ENV",
        help="the environment whose output to build (default: any; all compiled ones must agree on the image)",
    )
    parser.add_argument(
        "--build-dir",
        default="build",
        metavar="DIR",
        help="where `nebula compile` wrote its output, its --out (default: build)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="build with Docker, buildah, or auto: Docker when an engine answers, else buildah (default: auto)",
    )
    parser.add_argument("--no-cache", action="store_true", help="build every step again, without cached layers")
    parser.add_argument("--pull", action="store_true", help="pull the base image even when it is present")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only the image reference (and a failed build's last lines)"
    )


def _printer(stream: Any) -> Progress:
    def write(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return write


def run(args: argparse.Namespace) -> int:
    """`nebula package`: the build log on stderr, the image reference on stdout."""
    try:
        result = package(
            args.model,
            build_dir=Path(args.build_dir),
            environment=args.environment,
            engine=args.engine,
            progress=None if args.quiet else _printer(sys.stderr),
            no_cache=args.no_cache,
            pull=args.pull,
        )
    except PackageError as err:
        if err.log and args.quiet:
            sys.stderr.write(f"the last lines of the build log:\n{err.log}\n")
        sys.stderr.write(f"nebula package: {err.message}\n")
        return EXIT_USAGE if err.usage else EXIT_USER
    image, build = result.image, result.build
    if not args.quiet:
        sys.stderr.write(
            f"built {build.tag} ({build.image_id.removeprefix('sha256:')[:12]}) for {', '.join(image.environments)} "
            f"from {image.context} with {build.engine} in {build.seconds:.1f} s\n"
        )
    sys.stdout.write(build.tag + "\n")
    return EXIT_OK
