"""``pycompose image ...`` and the top-level aliases, run as a user would against an isolated
engine and a real registry; plus the CLI's pure rendering helpers."""

from __future__ import annotations

import io
import json
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator

import pytest

from pycompose.cli.image_cmd import human_duration, image_rows, since, table
from tests.fixtures import registry as fx
from tests.fixtures.engine import EngineProcess, start_engine, stop_engine
from tests.fixtures.images import busybox_oci_layout

tls_registry = fx.tls_registry


@pytest.fixture(scope="module")
def registry() -> Iterator[fx.RegistryServer]:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pcimg-cli-"))
    try:
        layout = busybox_oci_layout(tmp / "busybox")
        with fx.run_registry() as server:
            fx.skopeo_copy(layout, server, "busybox")
            yield server
    finally:
        shutil.rmtree(tmp)


@pytest.fixture
def engine() -> Iterator[EngineProcess]:
    proc = start_engine(components=())
    try:
        yield proc
    finally:
        stop_engine(proc)


def pc(engine: EngineProcess, *args: str, stdin: bytes | None = None,
       ) -> subprocess.CompletedProcess[bytes]:
    env = {**engine.env(), "PYCOMPOSE_CONFIG_DIR": str(engine.tmp / "config"),
           "DOCKER_CONFIG": str(engine.tmp / "docker-config")}
    return subprocess.run([sys.executable, "-m", "pycompose.cli.main", *args], input=stdin,
                          capture_output=True, env=env, timeout=120)


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def failed(result: subprocess.CompletedProcess[bytes]) -> str:
    """The one-line error of a failed command."""
    assert result.returncode == 1, result.stdout.decode()
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# -- against the engine ---------------------------------------------------------------------


@pytest.mark.root
def test_pull_images_tag_inspect_history_rmi(engine: EngineProcess,
                                             registry: fx.RegistryServer) -> None:
    ref = f"{registry.host}/busybox"
    lines = ok(pc(engine, "pull", ref)).splitlines()
    assert lines[0] == "latest: Pulling from busybox"
    assert any(line.endswith(": Pull complete") for line in lines)
    assert lines[-3].startswith("Digest: sha256:")
    assert lines[-2] == f"Status: Downloaded newer image for {ref}:latest"
    assert lines[-1] == f"{ref}:latest"
    assert not any("Downloading" in line for line in lines)

    table_out = ok(pc(engine, "images")).splitlines()
    assert table_out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    row = table_out[1].split()
    assert row[:2] == [ref, "latest"] and len(row[2]) == 12
    image_id = row[2]
    assert ok(pc(engine, "images", "-q")).split() == [image_id]

    ok(pc(engine, "tag", ref, "local/box:v1"))
    doc = json.loads(ok(pc(engine, "image", "ls", "--format", "json", "local/box")))
    assert (doc["Repository"], doc["Tag"], doc["ID"]) == ("local/box", "v1", image_id)
    digests = ok(pc(engine, "images", "--digests")).splitlines()
    assert "DIGEST" in digests[0] and any("sha256:" in line for line in digests[1:])

    inspect = json.loads(ok(pc(engine, "image", "inspect", "local/box:v1")))
    assert inspect[0]["Id"][7:19] == image_id
    assert "local/box:v1" in inspect[0]["RepoTags"]
    history = ok(pc(engine, "image", "history", "local/box:v1")).splitlines()
    assert history[0].split()[:2] == ["IMAGE", "CREATED"]
    assert history[1].startswith(image_id) and "busybox-static /bin/busybox" in history[1]

    assert ok(pc(engine, "rmi", "local/box:v1")).strip() == "Untagged: local/box:v1"
    out = ok(pc(engine, "image", "rm", image_id, "-f")).splitlines()
    assert out[0] == f"Untagged: {ref}:latest" and out[-1].startswith("Deleted: sha256:")
    assert ok(pc(engine, "images", "-q")) == ""


@pytest.mark.root
def test_errors_are_one_line_and_exit_1(engine: EngineProcess,
                                        registry: fx.RegistryServer) -> None:
    assert failed(pc(engine, "rmi", "nope")) == "No such image: nope:latest"
    assert failed(pc(engine, "pull", f"{registry.host}/nope")) == (
        f"manifest for {registry.host}/nope:latest not found: manifest unknown: manifest unknown")
    assert failed(pc(engine, "pull", "Bad/Ref")).startswith("invalid reference format")
    assert failed(pc(engine, "image", "inspect", "nope")) == "No such image: nope:latest"


@pytest.mark.root
def test_save_load_import_prune(engine: EngineProcess, registry: fx.RegistryServer,
                                tmp_path: pathlib.Path) -> None:
    ref = f"{registry.host}/busybox:latest"
    ok(pc(engine, "image", "pull", "-q", ref))
    archive = tmp_path / "box.tar"
    ok(pc(engine, "image", "save", "-o", str(archive), ref))
    with tarfile.open(archive) as tf:
        assert "manifest.json" in tf.getnames()
    ok(pc(engine, "rmi", ref))
    assert ok(pc(engine, "image", "load", "-i", str(archive))) == f"Loaded image: {ref}\n"
    streamed = pc(engine, "image", "save", ref)
    assert streamed.returncode == 0, streamed.stderr.decode()
    assert streamed.stdout == archive.read_bytes()

    rootfs = io.BytesIO()
    with tarfile.open(fileobj=rootfs, mode="w") as tf:
        info = tarfile.TarInfo("greeting")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"hi\n"))
    imported = ok(pc(engine, "image", "import", "-c", "CMD [\"cat\", \"/greeting\"]",
                     "-m", "from a tarball", "-", "imp/greet:1", stdin=rootfs.getvalue()))
    assert imported.strip().startswith("sha256:")
    info_doc = json.loads(ok(pc(engine, "image", "inspect", "imp/greet:1")))[0]
    assert info_doc["Config"]["Cmd"] == ["cat", "/greeting"]
    assert info_doc["Comment"] == "from a tarball"

    dangling = ok(pc(engine, "image", "import", "-", stdin=rootfs.getvalue())).strip()
    pruned = ok(pc(engine, "image", "prune", "-f")).splitlines()
    assert pruned[:2] == ["Deleted Images:", f"deleted: {dangling}"]
    assert pruned[-1].startswith("Total reclaimed space: ")
    left = ok(pc(engine, "images", "--format", "json")).splitlines()
    assert sorted(json.loads(line)["Repository"] for line in left) == [
        f"{registry.host}/busybox", "imp/greet"]
    everything = ok(pc(engine, "image", "prune", "-a", "-f")).splitlines()
    assert everything[0] == "Deleted Images:"
    assert ok(pc(engine, "images", "-q")) == ""


@pytest.mark.root
def test_login_push_logout(engine: EngineProcess, registry: fx.RegistryServer,
                           tls_registry: fx.RegistryServer) -> None:
    ok(pc(engine, "pull", "-q", f"{registry.host}/busybox"))
    target = f"{tls_registry.host}/cli/box:2"
    ok(pc(engine, "tag", f"{registry.host}/busybox", target))
    bad = pc(engine, "login", "-u", fx.USERNAME, "--password-stdin", tls_registry.host,
             stdin=b"wrong\n")
    assert "401" in failed(bad)
    assert ok(pc(engine, "login", "-u", fx.USERNAME, "--password-stdin", tls_registry.host,
                 stdin=fx.PASSWORD.encode() + b"\n")).strip() == "Login Succeeded"
    saved = json.loads((engine.tmp / "config" / "auth.json").read_text())
    assert tls_registry.host in saved["auths"]
    pushed = ok(pc(engine, "push", target)).splitlines()
    assert pushed[0] == f"The push refers to repository [{tls_registry.host}/cli/box]"
    assert pushed[-1].startswith("2: digest: sha256:")
    assert str(fx.skopeo_inspect(tls_registry, "cli/box:2")["Digest"]) in pushed[-1]
    assert ok(pc(engine, "logout", tls_registry.host)).strip() == (
        f"Removing login credentials for {tls_registry.host}")
    assert ok(pc(engine, "logout", tls_registry.host)).strip() == (
        f"Not logged in to {tls_registry.host}")
    ok(pc(engine, "rmi", target))
    ok(pc(engine, "pull", "-q", f"{registry.host}/busybox:latest"))
    refused = pc(engine, "pull", target)
    assert "401" in failed(refused) or "nauthorized" in failed(refused)


# -- rendering, no engine -------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "text"), [
    (0.5, "Less than a second"), (1, "1 second"), (42, "42 seconds"), (61, "About a minute"),
    (600, "10 minutes"), (3600, "About an hour"), (5 * 3600, "5 hours"),
    (3 * 86400, "3 days"), (20 * 86400, "2 weeks"), (90 * 86400, "3 months"),
    (800 * 86400, "2 years"),
])  # fmt: skip
def test_human_duration_like_docker(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_since_unknown_creation_time() -> None:
    assert since(0) == "N/A"
    assert since(1000, now=1000 + 7200) == "2 hours ago"


def test_table_pads_like_tabwriter() -> None:
    out = table([["REPOSITORY", "TAG", "SIZE"], ["127.0.0.1:5000/busybox", "latest", "2MB"]])
    assert out.splitlines() == [
        "REPOSITORY               TAG       SIZE",
        "127.0.0.1:5000/busybox   latest    2MB",
    ]


def test_image_rows_tags_digests_and_untagged() -> None:
    images = [
        {"Id": "sha256:" + "a" * 64, "RepoTags": ["x/y:1", "x/y:2"],
         "RepoDigests": ["x/y@sha256:" + "d" * 64], "Created": 5, "Size": 10},
        {"Id": "sha256:" + "b" * 64, "RepoTags": [], "RepoDigests": [], "Created": 1,
         "Size": 1},
        {"Id": "sha256:" + "c" * 64, "RepoTags": [], "RepoDigests": ["z@sha256:" + "e" * 64],
         "Created": 1, "Size": 1},
    ]
    rows = image_rows(images, digests=True, no_trunc=False)
    assert [(r["Repository"], r["Tag"], r["Digest"][:8], r["ID"]) for r in rows] == [
        ("x/y", "1", "sha256:d", "a" * 12), ("x/y", "2", "sha256:d", "a" * 12),
        ("<none>", "<none>", "<none>", "b" * 12), ("z", "<none>", "sha256:e", "c" * 12),
    ]
    assert image_rows(images[:1], digests=False, no_trunc=True)[0]["ID"] == images[0]["Id"]
