"""`nebula package`: finding a model's compiled build context, and building it for real.

buildah really builds here (`.ci/run` installs it, with busybox-static). There is no registry, so the
base image is a stand-in made offline: a static busybox plus three small scripts where the compiled
Dockerfile expects python:3.11-slim's `groupadd`, `useradd` and `pip` (the stand-in pip records the
requirements instead of installing them: there is no package index either). The Dockerfile that
`nebula compile` wrote is built unchanged. The Docker path talks to a stand-in engine that speaks
the Engine API over a unix socket, since no Docker daemon runs here; nothing of nebula is mocked.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import socket
import socketserver
import subprocess
import tarfile
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml

from nebula_compile.api import compile_path
from nebula_compile.cli import main as nebula
from nebula_compile.emit.images import image_ref
from nebula_runtime.package import (
    PackageError,
    add_arguments,
    build_image,
    context_tag,
    locate,
    package,
    run,
)

RUN = uuid.uuid4().hex[:8]
"""In every image name these tests create, so that runs never meet (and cleanup is exact)."""
GROUPADD = """\
#!/bin/sh
# stand-in for shadow's groupadd: groupadd [--system] --gid GID NAME
while [ $# -gt 1 ]; do case "$1" in --gid) gid=$2; shift 2 ;; *) shift ;; esac; done
echo "$1:x:${gid:?--gid is required}:" >> /etc/group
"""
USERADD = """\
#!/bin/sh
# stand-in for shadow's useradd: useradd [--system] --uid UID --gid GROUP --home-dir DIR --shell SHELL NAME
while [ $# -gt 1 ]; do
  case "$1" in
    --uid) uid=$2; shift 2 ;;
    --gid) gid=$(grep "^$2:" /etc/group | cut -d: -f3); shift 2 ;;
    --home-dir) home=$2; shift 2 ;;
    --shell) shell=$2; shift 2 ;;
    *) shift ;;
  esac
done
echo "$1:x:${uid:?--uid is required}:${gid:?no such group}:$1:$home:$shell" >> /etc/passwd
"""
PIP = """\
#!/bin/sh
# stand-in for pip: there is no package index here, so it records what it is asked to install
[ "$1" = install ] && [ "$2" = --requirement ] || { echo "stand-in pip: unsupported: $*" >&2; exit 2; }
mkdir -p /var/lib/stand-in-pip && cp "$3" /var/lib/stand-in-pip/requirements.txt
echo "stand-in pip: recorded $(grep -c . "$3") requirements"
"""


def buildah(*args: str) -> str:
    found = shutil.which("buildah")
    assert found, "buildah is not installed; .ci/run installs it (apt-get install buildah)"
    done = subprocess.run([found, *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"buildah {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def local_images() -> dict[str, str]:
    """name:tag -> image id, as `buildah images` lists them."""
    listing = buildah("images", "--format", "{{.Name}}:{{.Tag}} {{.ID}}")
    return dict(line.split() for line in listing.splitlines() if not line.startswith("<none>"))


def make_base(name: str, scripts: dict[str, str]) -> str:
    """A stand-in base image, made offline: static busybox as /bin, plus `scripts` in /usr/local/bin."""
    busybox = Path("/bin/busybox")
    assert busybox.is_file(), "busybox-static is not installed; .ci/run installs it (apt-get install busybox-static)"
    container = buildah("from", "scratch")
    try:
        root = Path(buildah("mount", container))
        for folder in ("bin", "etc", "tmp", "usr/local/bin"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(busybox, root / "bin" / "busybox")
        for applet in subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split():
            if applet != "busybox":
                (root / "bin" / applet).symlink_to("busybox")
        (root / "etc" / "group").write_text("root:x:0:\n")
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        for script, text in scripts.items():
            (root / "usr" / "local" / "bin" / script).write_text(text)
            (root / "usr" / "local" / "bin" / script).chmod(0o755)
        buildah("umount", container)
        buildah("config", "--env", "PATH=/usr/local/bin:/bin", "--cmd", "/bin/sh", container)
        buildah("commit", "--quiet", container, name)
    finally:
        buildah("rm", container)
    return name


def dangling() -> set[str]:
    return set(buildah("images", "--all", "--filter", "dangling=true", "--quiet", "--no-trunc").split())


@pytest.fixture(scope="module")
def bases() -> Iterator[dict[str, str]]:
    """ "python": the stand-in for python:3.11-slim; "bare": busybox alone (no groupadd: a build that fails).

    Afterwards they go, and so do the cached layers that failed builds left untagged (a successful build's
    go with its image): the untagged images that appeared meanwhile.
    """
    before = dangling()
    scripts = {"groupadd": GROUPADD, "useradd": USERADD, "pip": PIP}
    made = {
        "python": make_base(f"localhost/nebula-test-{RUN}/python:3.11-standin", scripts),
        "bare": make_base(f"localhost/nebula-test-{RUN}/busybox:1.35", {}),
    }
    yield made
    left = dangling() - before
    buildah("rmi", *left, *made.values())


@pytest.fixture
def built() -> Iterator[list[str]]:
    """Image names a test adds here are removed after it, whatever happened."""
    names: list[str] = []
    yield names
    present = local_images()
    leftovers = [name for name in names if name in present]
    if leftovers:
        buildah("rmi", *leftovers)


@pytest.fixture
def no_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """DOCKER_HOST at a unix socket that is bound but never listens: connecting to it is refused."""
    path = tmp_path / "docker.sock"
    closed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    closed.bind(str(path))
    closed.close()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    return path


def config(base: str, *, projects: str | None = None) -> str:
    return f"""\
version: 1
platform:
  name: packaging
  registry: localhost/nebula-test-{RUN}
  base_image: {base}
environments:
  dev: {{}}
  prod: {{}}
projects:
{projects or IRIS}"""


IRIS = """\
  iris:
    datasets:
      flowers: {source: {builtin: sklearn.iris}}
    models:
      iris-tree: {task: classification, algorithm: decision_tree, dataset: flowers, target: species}
    deployments:
      iris-api: {model: iris-tree}
"""
TWO_PROJECTS = (
    IRIS
    + """\
  garden:
    datasets:
      flowers: {source: {builtin: sklearn.iris}}
    models:
      iris-tree: {task: classification, algorithm: decision_tree, dataset: flowers, target: species}
      iris-forest: {task: classification, algorithm: random_forest, dataset: flowers, target: species}
"""
)


@pytest.fixture
def compiled(tmp_path: Path) -> Callable[..., Path]:
    """compiled(text, *envs) -> the build folder `nebula compile` wrote it into."""

    def _compile(text: str, *environments: str) -> Path:
        source = tmp_path / "nebula.yaml"
        source.write_text(text)
        build = tmp_path / "build"
        flags = [arg for env in environments for arg in ("--env", env)]
        assert nebula(["compile", str(source), "--out", str(build), "--revision", "none", *flags]) == 0
        return build

    return _compile


def pinned_images(build: Path, environment: str) -> set[str]:
    """Every `image:` of the compiled Kubernetes objects of project iris."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "image" and isinstance(value, str):
                    found.add(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in (build / environment / "kubernetes" / "iris").glob("*.yaml"):
        for obj in yaml.safe_load_all(path.read_text()):
            walk(obj)
    return found


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="nebula package")
    add_arguments(parser)
    return run(parser.parse_args(argv))


# --- building for real ---------------------------------------------------------------------------------------


def test_the_compiled_context_builds_with_buildah_under_the_tag_the_deployments_pin(
    bases: dict[str, str], compiled: Callable[..., Path], built: list[str], tmp_path: Path
) -> None:
    build = compiled(config(bases["python"]))
    graph = compile_path(str(tmp_path / "nebula.yaml")).graphs["dev"]
    model = graph.get("model.iris.iris-tree")
    assert model is not None
    expected = image_ref(graph, model)
    assert pinned_images(build, "dev") == pinned_images(build, "prod") == {expected}
    built.append(expected)
    lines: list[str] = []

    result = package("iris-tree", build_dir=build, environment=None, engine="buildah", progress=lines.append)

    assert result.image.environments == ("dev", "prod")
    assert result.image.context == build / "dev" / "images" / "iris-iris-tree"
    assert (result.build.engine, result.build.tag) == ("buildah", expected)
    assert local_images()[expected] == result.build.image_id.removeprefix("sha256:")[:12]
    assert lines[0].startswith("$ buildah bud --isolation chroot")
    assert any(line.startswith("STEP 1/") for line in lines)
    assert "stand-in pip: recorded 2 requirements" in lines
    config_ = json.loads(buildah("inspect", "--type", "image", expected))["Docker"]["config"]
    assert config_["Entrypoint"] == ["python", "-m", "nebula_runtime.serve", "--config", "/app/nebula-model.json"]
    assert config_["User"] == "10001:10001"
    assert "8080/tcp" in config_["ExposedPorts"]
    assert config_["Healthcheck"]["Test"][0] == "CMD"  # kept: the image is built in Docker's format
    container = buildah("from", expected)
    try:
        root = Path(buildah("mount", container))
        context = result.image.context
        assert (root / "app/nebula-model.json").read_text() == (context / "nebula-model.json").read_text()
        assert (root / "var/lib/stand-in-pip/requirements.txt").read_text() == (
            context / "requirements.txt"
        ).read_text()
        assert "nebula:x:10001:10001:nebula:/app:/usr/sbin/nologin" in (root / "etc/passwd").read_text()
    finally:
        buildah("rm", container)


def test_a_failed_build_raises_with_the_tail_of_its_log(
    bases: dict[str, str], tmp_path: Path, built: list[str]
) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {bases['bare']}\nRUN echo preparing && echo broken >&2 && exit 3\n")
    tag = f"localhost/nebula-test-{RUN}/fails:1"
    built.append(tag)

    with pytest.raises(PackageError) as raised:
        build_image(context, tag, engine="buildah")

    assert f"buildah build of {tag} failed (exit status" in raised.value.message
    assert "preparing" in raised.value.log
    assert "broken" in raised.value.log
    assert not raised.value.usage
    assert tag not in local_images()


def test_the_command_prints_the_log_and_the_reference_and_fails_without_a_traceback(
    bases: dict[str, str], compiled: Callable[..., Path], built: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    build = compiled(config(bases["python"]))
    capsys.readouterr()
    assert cli("iris/iris-tree", "--build-dir", str(build), "-e", "prod", "--engine", "buildah") == 0
    out, err = capsys.readouterr()
    (ref,) = pinned_images(build, "prod")
    built.append(ref)
    assert out == ref + "\n"
    assert "STEP 1/" in err
    assert f"built {ref} (" in err
    assert "for prod from" in err

    broken = compiled(config(bases["bare"]))  # the compiled Dockerfile's groupadd is not in busybox
    capsys.readouterr()
    assert cli("iris-tree", "--build-dir", str(broken), "--engine", "buildah", "--quiet") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "the last lines of the build log:" in err
    assert "groupadd: not found" in err
    assert "nebula package: buildah build of" in err
    assert "Traceback" not in err


def test_auto_builds_with_buildah_when_no_docker_engine_answers(
    bases: dict[str, str], tmp_path: Path, built: list[str], no_docker: Path
) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {bases['bare']}\nRUN echo built > /built\n")
    tag = f"localhost/nebula-test-{RUN}/auto:1"
    built.append(tag)

    result = build_image(context, tag)

    assert result.engine == "buildah"
    assert result.seconds > 0
    assert tag in local_images()


# --- no engine -----------------------------------------------------------------------------------------------


@pytest.fixture
def nothing_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_docker: Path) -> Path:
    """No Docker engine answers, and buildah is not on PATH; returns a build context."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    return context


def test_without_docker_or_buildah_the_error_says_what_was_tried_and_how_to_fix_it(nothing_installed: Path) -> None:
    with pytest.raises(PackageError) as raised:
        build_image(nothing_installed, "localhost/nothing:1")
    message = raised.value.message
    assert "no container engine to build with" in message
    assert f"Docker: no engine answers at unix://{nothing_installed.parent}/docker.sock" in message
    assert "buildah: not installed (not on PATH)" in message
    assert "install and start Docker" in message
    assert "apt-get install buildah" in message


def test_a_forced_engine_that_is_missing_says_so(nothing_installed: Path) -> None:
    with pytest.raises(PackageError, match=r"cannot build with Docker: no engine answers at unix://.*DOCKER_HOST"):
        build_image(nothing_installed, "localhost/nothing:1", engine="docker")
    with pytest.raises(PackageError, match=r"cannot build with buildah: it is not installed .*apt-get install buildah"):
        build_image(nothing_installed, "localhost/nothing:1", engine="buildah")
    with pytest.raises(PackageError, match="unknown engine 'podman'") as raised:
        build_image(nothing_installed, "localhost/nothing:1", engine="podman")
    assert raised.value.usage


# --- the Docker path, against a stand-in engine -----------------------------------------------------------------


class _Engine(BaseHTTPRequestHandler):
    """Enough of the Docker Engine API for a build: /version, /_ping, and POST /build streaming its log."""

    protocol_version = "HTTP/1.1"
    builds: list[dict[str, Any]]
    fail: bool

    def log_message(self, format: str, *args: Any) -> None:  # quiet; a unix socket has no client address
        pass

    def _reply(self, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.endswith("/_ping"):
            self._reply(b"OK", "text/plain")
        elif self.path.endswith("/version"):
            self._reply(json.dumps({"ApiVersion": "1.45", "Version": "stand-in"}).encode())
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        if "/build" not in self.path:
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with tarfile.open(fileobj=io.BytesIO(body)) as archive:
            self.builds.append({"path": self.path, "files": sorted(archive.getnames())})
        chunks: list[dict[str, Any]] = [
            {"stream": "Step 1/2 : FROM python:3.11.10-slim-bookworm\n"},
            {"stream": " ---> 0123456789ab\nStep 2/2 : RUN pip install"},
            {"stream": " --requirement requirements.txt\n"},
        ]
        if self.fail:
            chunks.append({"error": "The command '/bin/sh -c pip install' returned a non-zero code: 1"})
        else:
            chunks += [{"aux": {"ID": "sha256:" + "ab" * 32}}, {"stream": "Successfully built abababababab\n"}]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            data = json.dumps(chunk).encode() + b"\r\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Engine]]:
    handler = type("Engine", (_Engine,), {"builds": [], "fail": False})
    server = _Server(str(tmp_path / "engine.sock"), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'engine.sock'}")
    yield handler
    server.shutdown()
    server.server_close()
    thread.join()


def test_auto_prefers_a_docker_engine_and_streams_its_log(
    engine: type[_Engine], compiled: Callable[..., Path], tmp_path: Path
) -> None:
    build = compiled(config("python:3.11.10-slim-bookworm"))
    lines: list[str] = []

    result = package("iris-tree", build_dir=build, environment="dev", progress=lines.append)

    assert (result.build.engine, result.build.image_id) == ("docker", "sha256:" + "ab" * 32)
    assert (
        result.build.tag
        == result.image.ref
        == f"localhost/nebula-test-{RUN}/iris-iris-tree:" + context_tag(build / "dev" / "images" / "iris-iris-tree")
    )
    (request,) = engine.builds
    assert "t=" + result.build.tag.replace("/", "%2F").replace(":", "%3A") in request["path"]
    assert {"Dockerfile", "nebula-model.json", "requirements.txt"} <= set(request["files"])
    assert lines[1:] == [
        "Step 1/2 : FROM python:3.11.10-slim-bookworm",
        " ---> 0123456789ab",
        "Step 2/2 : RUN pip install --requirement requirements.txt",
        "Successfully built abababababab",
    ]


def test_a_failed_docker_build_raises_with_the_tail_of_its_log(engine: type[_Engine], tmp_path: Path) -> None:
    engine.fail = True
    (tmp_path / "Dockerfile").write_text("FROM python:3.11.10-slim-bookworm\nRUN pip install\n")
    with pytest.raises(PackageError, match="returned a non-zero code: 1") as raised:
        build_image(tmp_path, "localhost/failing:1", engine="docker")
    assert raised.value.message.startswith("docker build of localhost/failing:1 failed")
    assert "Step 2/2 : RUN pip install --requirement requirements.txt" in raised.value.log


# --- finding the model ---------------------------------------------------------------------------------------------


def test_a_model_is_found_by_name_or_by_project_and_name(compiled: Callable[..., Path]) -> None:
    build = compiled(config("python:3.11.10-slim-bookworm", projects=TWO_PROJECTS))
    forest = locate("iris-forest", build_dir=build)
    assert (forest.project, forest.model, forest.environments) == ("garden", "iris-forest", ("dev", "prod"))
    tree = locate("iris/iris-tree", build_dir=build, environment="prod")
    assert tree.context == build / "prod" / "images" / "iris-iris-tree"
    assert tree.ref in pinned_images(build, "prod")


def test_a_model_name_two_projects_share_must_say_which(compiled: Callable[..., Path]) -> None:
    build = compiled(config("python:3.11.10-slim-bookworm", projects=TWO_PROJECTS))
    with pytest.raises(PackageError) as raised:
        locate("iris-tree", build_dir=build)
    assert (
        raised.value.message == "'iris-tree' names several models: garden/iris-tree, iris/iris-tree; give PROJECT/MODEL"
    )
    assert raised.value.usage


def test_an_unknown_model_lists_the_compiled_ones(compiled: Callable[..., Path]) -> None:
    build = compiled(config("python:3.11.10-slim-bookworm", projects=TWO_PROJECTS))
    with pytest.raises(
        PackageError,
        match=r"no model 'garden/nope' in .*build/ \(dev, prod\); compiled models: "
        r"garden/iris-forest, garden/iris-tree, iris/iris-tree",
    ) as raised:
        locate("garden/nope", build_dir=build)
    assert raised.value.usage
    with pytest.raises(PackageError, match=r"no environment 'staging' in .*: compiled are dev, prod"):
        locate("iris-tree", build_dir=build, environment="staging")
    with pytest.raises(PackageError, match="'a/b/c' is not a model: give MODEL or PROJECT/MODEL"):
        locate("a/b/c", build_dir=build)


def test_without_compiled_output_the_error_says_to_compile_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(
        PackageError, match=r"build/ does not exist: nothing is compiled there; run `nebula compile` first"
    ):
        locate("iris-tree", build_dir=tmp_path / "build")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        PackageError, match=r"holds no compiled environment .*; run `nebula compile` first \(with --out"
    ):
        locate("iris-tree", build_dir=tmp_path / "empty")
    assert cli("iris-tree", "--build-dir", str(tmp_path / "build")) == 1
    assert cli("iris/iris-tree/x", "--build-dir", str(tmp_path / "build")) == 2
    assert "run `nebula compile` first" in capsys.readouterr().err


def test_a_context_edited_after_compile_is_refused(compiled: Callable[..., Path]) -> None:
    build = compiled(config("python:3.11.10-slim-bookworm"))
    dockerfile = build / "dev" / "images" / "iris-iris-tree" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN echo extra\n")
    with pytest.raises(
        PackageError,
        match=r"iris-iris-tree is not what `nebula compile` wrote: its files hash to "
        r"sha-[0-9a-f]{12}, but .* pins sha-[0-9a-f]{12} \(was it edited by hand\?\)",
    ) as raised:
        locate("iris-tree", build_dir=build, environment="dev")
    assert not raised.value.usage
    assert locate("iris-tree", build_dir=build, environment="prod").environments == ("prod",)


def test_environments_that_compile_different_images_must_be_chosen(compiled: Callable[..., Path]) -> None:
    compiled(config("python:3.11.10-slim-bookworm"), "dev")
    build = compiled(config("python:3.12.7-slim-bookworm"), "prod")  # prod compiled from a later config
    with pytest.raises(
        PackageError,
        match=r"iris/iris-tree compiles to a different image per environment \(dev: "
        r".*; prod: .*\); choose one with --environment",
    ) as raised:
        locate("iris-tree", build_dir=build)
    assert raised.value.usage
    assert locate("iris-tree", build_dir=build, environment="prod").ref in pinned_images(build, "prod")
