"""The images component of a real daemon, driven by the docker CLI, docker-py and our client,
against a real docker-registry seeded with skopeo from the busybox OCI layout."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from pycompose.engine.api.app import EngineContext
from pycompose.engine.client import EngineClient
from pycompose.engine.errors import Conflict, EngineError, InvalidArgument, NotFound
from tests.fixtures import registry as fx
from tests.fixtures.engine import EngineProcess, start_engine, stop_engine
from tests.fixtures.images import busybox_oci_layout, files_tar

pytestmark = pytest.mark.root

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
IN_USE_COMPONENT = "tests.integration.test_images_api:in_use_component"
tls_registry = fx.tls_registry


@pytest.fixture(scope="module")
def layout() -> Iterator[pathlib.Path]:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pcimg-layout-"))
    try:
        yield busybox_oci_layout(tmp / "busybox")
    finally:
        shutil.rmtree(tmp)


@pytest.fixture(scope="module")
def registry(layout: pathlib.Path) -> Iterator[fx.RegistryServer]:
    """One registry for the module, holding busybox:latest (tests push to other names)."""
    with fx.run_registry() as server:
        fx.skopeo_copy(layout, server, "busybox")
        yield server


@pytest.fixture
def engine() -> Iterator[EngineProcess]:
    proc = start_engine(components=())
    try:
        yield proc
    finally:
        stop_engine(proc)


def image_id(layout: pathlib.Path) -> str:
    """The config digest of the layout's image: the id the engine must report."""
    index = json.loads((layout / "index.json").read_text())
    man = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    return str(man["config"]["digest"])


def run_docker(engine: EngineProcess, *args: str,
               stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = str(engine.tmp / "docker-config")
    return subprocess.run([DOCKER, "-H", engine.host, *args], input=stdin, capture_output=True,
                          env=env, timeout=120)


def pull(client: EngineClient, ref: str, tag: str = "latest") -> list[dict[str, Any]]:
    with client.stream("POST", "/images/create", query={"fromImage": ref, "tag": tag}) as resp:
        return list(resp.iter_json())


def import_image(client: EngineClient, data: bytes, **query: Any) -> str:
    with client.stream("POST", "/images/create", query={"fromSrc": "-", **query},
                       data=data) as resp:
        (line,) = list(resp.iter_json())
    return str(line["status"])


def in_use_component(ctx: EngineContext) -> None:
    """A stand-in containers service that says every image is used by a container."""

    class Containers:
        def image_in_use(self, image_id: str) -> bool:
            return True

    ctx.services["containers"] = Containers()


# -- the docker CLI -------------------------------------------------------------------------


def test_docker_cli_pull_images_tag_inspect_rmi(engine: EngineProcess,
                                                registry: fx.RegistryServer,
                                                layout: pathlib.Path) -> None:
    ref = f"{registry.host}/busybox:latest"
    out = run_docker(engine, "pull", ref)
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    assert "latest: Pulling from busybox" in text
    assert "Digest: sha256:" in text
    assert f"Status: Downloaded newer image for {ref}" in text
    assert text.rstrip().endswith(ref)
    again = run_docker(engine, "pull", ref)
    assert f"Status: Image is up to date for {ref}" in again.stdout.decode()

    listing = run_docker(engine, "images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}")
    assert listing.stdout.decode().split() == [f"{registry.host}/busybox", "latest",
                                                image_id(layout)[7:19]]
    assert run_docker(engine, "tag", ref, "mybox:1").returncode == 0
    inspect = json.loads(run_docker(engine, "image", "inspect", "mybox:1").stdout)
    assert inspect[0]["Id"] == image_id(layout)
    assert sorted(inspect[0]["RepoTags"]) == sorted([ref, "mybox:1"])
    assert inspect[0]["Config"]["Cmd"] == ["sh"]
    assert inspect[0]["RootFS"]["Type"] == "layers"

    history = run_docker(engine, "history", "--format", "{{.CreatedBy}}", "mybox:1")
    assert history.stdout.decode().strip() == "busybox-static /bin/busybox"
    rmi = run_docker(engine, "rmi", "mybox:1")
    assert rmi.stdout.decode().strip() == "Untagged: mybox:1"
    rmi = run_docker(engine, "rmi", ref)
    assert f"Deleted: {image_id(layout)}" in rmi.stdout.decode()
    assert run_docker(engine, "images", "-q").stdout == b""
    missing = run_docker(engine, "rmi", "nope")
    assert missing.returncode == 1
    assert "No such image" in missing.stderr.decode()


def test_docker_cli_save_then_load(engine: EngineProcess, registry: fx.RegistryServer,
                                   layout: pathlib.Path) -> None:
    ref = f"{registry.host}/busybox:latest"
    assert run_docker(engine, "pull", ref).returncode == 0
    saved = run_docker(engine, "save", ref)
    assert saved.returncode == 0, saved.stderr
    with tarfile.open(fileobj=io.BytesIO(saved.stdout)) as tf:
        names = tf.getnames()
    assert "manifest.json" in names and "index.json" in names
    assert run_docker(engine, "rmi", ref).returncode == 0
    loaded = run_docker(engine, "load", stdin=saved.stdout)
    assert loaded.returncode == 0, loaded.stderr
    assert f"Loaded image: {ref}" in loaded.stdout.decode()
    inspect = json.loads(run_docker(engine, "inspect", ref).stdout)
    assert inspect[0]["Id"] == image_id(layout)


def test_docker_cli_pull_missing_image_fails_like_docker(engine: EngineProcess,
                                                         registry: fx.RegistryServer) -> None:
    out = run_docker(engine, "pull", f"{registry.host}/nope:latest")
    assert out.returncode == 1
    assert (f"Error response from daemon: manifest for {registry.host}/nope:latest not found: "
            "manifest unknown: manifest unknown") in out.stderr.decode()


# -- docker-py ------------------------------------------------------------------------------


def test_docker_py_pull_list_tag_save_load_remove(engine: EngineProcess,
                                                  registry: fx.RegistryServer,
                                                  layout: pathlib.Path) -> None:
    client = docker.DockerClient(base_url=engine.host, timeout=60)
    try:
        img = client.images.pull(f"{registry.host}/busybox", tag="latest")
        assert img.id == image_id(layout)
        assert img.tags == [f"{registry.host}/busybox:latest"]
        assert [i.id for i in client.images.list()] == [img.id]
        assert img.tag("pyd/box", "v2") is True
        assert client.images.get("pyd/box:v2").id == img.id
        assert [i.id for i in client.images.list(name="pyd/box")] == [img.id]
        assert img.history()[0]["Id"] == img.id
        data = b"".join(img.save())
        client.images.remove(img.id, force=True)
        assert client.images.list() == []
        (loaded,) = client.images.load(data)
        assert loaded.id == img.id
    finally:
        client.close()


# -- our client: shapes, errors, filters ----------------------------------------------------


def test_pull_streams_docker_progress(engine: EngineProcess,
                                      registry: fx.RegistryServer) -> None:
    client = engine.client()
    events = pull(client, f"{registry.host}/busybox")
    statuses = [e["status"] for e in events]
    assert statuses[0] == "Pulling from busybox" and events[0]["id"] == "latest"
    assert "Pull complete" in statuses
    assert statuses[-1] == f"Status: Downloaded newer image for {registry.host}/busybox:latest"
    summary = client.get("/images/json")
    assert set(summary[0]) >= {"Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size",
                               "SharedSize", "Labels", "Containers"}
    assert summary[0]["RepoDigests"][0].startswith(f"{registry.host}/busybox@sha256:")


def test_bad_input_statuses(engine: EngineProcess, registry: fx.RegistryServer) -> None:
    client = engine.client()
    with pytest.raises(NotFound, match=r"manifest for .*/nope:latest not found"):
        pull(client, f"{registry.host}/nope")
    with pytest.raises(InvalidArgument, match="invalid reference format"):
        pull(client, "Bad/Ref")
    with pytest.raises(InvalidArgument, match="fromImage or fromSrc"):
        client.post("/images/create")
    with pytest.raises(NotFound, match=r"^No such image: nope:latest$"):
        client.delete("/images/nope")
    with pytest.raises(NotFound, match="No such image"):
        client.get("/images/nope/json")
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        client.get("/images/json", query={"filters": {"colour": ["red"]}})
    with pytest.raises(InvalidArgument, match="X-Registry-Auth"):
        client.call("POST", "/images/create", query={"fromImage": "x"},
                    headers={"X-Registry-Auth": "!!!not base64"})
    with pytest.raises(InvalidArgument, match="URL"):
        client.post("/images/create", query={"fromSrc": "http://example.com/x.tar"})
    assert client.get("/images/json") == []


def test_import_with_changes_tag_filters_and_delete_rules(engine: EngineProcess) -> None:
    client = engine.client()
    tar = files_tar({"hello.txt": b"hi\n"})
    gz = gzip.compress(tar)
    first = import_image(client, gz, repo="imp/one", tag="v1",
                         changes=['CMD ["cat", "/hello.txt"]', "ENV A=1 B=2", "LABEL team=x"])
    info = client.get("/images/imp/one:v1/json")
    assert info["Id"] == first
    assert info["Config"]["Cmd"] == ["cat", "/hello.txt"]
    assert info["Config"]["Env"] == ["A=1", "B=2"]
    second = import_image(client, files_tar({"other": b"x"}))
    assert client.get(f"/images/{second}/json")["RepoTags"] == []

    def ids(filters: dict[str, list[str]]) -> list[str]:
        return [i["Id"] for i in client.get("/images/json", query={"filters": filters})]

    assert ids({"dangling": ["true"]}) == [second]
    assert ids({"label": ["team=x"]}) == [first]
    assert ids({"reference": ["imp/*"]}) == [first]
    assert ids({"reference": ["nothing*"]}) == []
    with pytest.raises(InvalidArgument, match="invalid filter 'dangling=maybe'"):
        ids({"dangling": ["maybe"]})

    client.post(f"/images/{first}/tag", query={"repo": "imp/two", "tag": "v1"})
    with pytest.raises(InvalidArgument, match="repo is required"):
        client.post(f"/images/{first}/tag")
    with pytest.raises(Conflict, match="referenced in multiple repositories"):
        client.delete(f"/images/{first[7:19]}")
    assert client.delete("/images/imp/two:v1") == [{"Untagged": "imp/two:v1"}]
    items = client.delete("/images/imp/one:v1")
    # The last tag goes, then the digest names of the image (the store pins imported
    # images by manifest digest too), then the image itself.
    assert items[0] == {"Untagged": "imp/one:v1"}
    assert [list(i) for i in items[1:-1]] == [["Untagged"]]
    assert items[1]["Untagged"].startswith("imp/one@sha256:")
    assert items[-1] == {"Deleted": first}
    pruned = client.post("/images/prune")
    assert pruned["ImagesDeleted"] == [{"Deleted": second}]
    assert pruned["SpaceReclaimed"] > 0
    assert client.get("/images/json") == []


def test_events_for_pull_tag_untag_delete(engine: EngineProcess,
                                          registry: fx.RegistryServer) -> None:
    client = engine.client()
    pull(client, f"{registry.host}/busybox")
    client.post(f"/images/{registry.host}/busybox/tag", query={"repo": "ev/box"})
    client.delete(f"/images/{registry.host}/busybox:latest", query={"force": True})
    client.delete("/images/ev/box")
    with client.stream("GET", "/events", query={"since": "0", "until": str(int(time.time()) + 1),
                                                "filters": {"type": ["image"]}}) as resp:
        actions = [e["Action"] for e in resp.iter_json()]
    assert actions == ["pull", "tag", "untag", "untag", "untag", "delete"]


def test_image_used_by_a_container_needs_force(registry: fx.RegistryServer) -> None:
    engine = start_engine(components=(IN_USE_COMPONENT,))
    try:
        client = engine.client()
        pull(client, f"{registry.host}/busybox")
        with pytest.raises(Conflict, match="container is using its referenced image"):
            client.delete(f"/images/{registry.host}/busybox")
        items = client.delete(f"/images/{registry.host}/busybox", query={"force": True})
        assert all("Deleted" not in i for i in items)
        assert client.get("/images/json")[0]["RepoTags"] == []
        assert client.post("/images/prune", query={"filters": {"dangling": ["false"]}}) == {
            "ImagesDeleted": None, "SpaceReclaimed": 0}
    finally:
        stop_engine(engine)


def test_push_with_auth_header_and_login_check(engine: EngineProcess,
                                               tls_registry: fx.RegistryServer,
                                               layout: pathlib.Path) -> None:
    client = engine.client()
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        for path in sorted(layout.rglob("*")):
            tf.add(path, arcname=str(path.relative_to(layout)), recursive=False)
    with client.stream("POST", "/images/load", data=tar.getvalue()) as resp:
        assert [e["stream"] for e in resp.iter_json()] == ["Loaded image: busybox:latest\n"]
    target = f"{tls_registry.host}/team/box"
    client.post("/images/busybox/tag", query={"repo": target, "tag": "1.0"})
    creds = {"username": fx.USERNAME, "password": fx.PASSWORD, "serveraddress": tls_registry.host}
    header = {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(creds).encode()).decode()}
    with pytest.raises(EngineError) as refused, \
            client.stream("POST", f"/images/{target}/push", query={"tag": "1.0"}) as resp:
        list(resp.iter_json())
    # After "The push refers to repository" the refusal arrives in the stream, as in Docker.
    assert "401 Unauthorized" in str(refused.value)
    with client.stream("POST", f"/images/{target}/push", query={"tag": "1.0"},
                       headers=header) as resp:
        events = list(resp.iter_json())
    assert events[-1]["aux"]["Tag"] == "1.0"
    assert fx.skopeo_inspect(tls_registry, "team/box:1.0")["Digest"] == events[-1]["aux"]["Digest"]

    ok = client.post("/auth", body=creds)
    assert ok == {"Status": "Login Succeeded", "IdentityToken": ""}
    with pytest.raises(EngineError) as bad:
        client.post("/auth", body={**creds, "password": "wrong"})
    assert bad.value.status == 401


def test_save_abandoned_by_the_client_leaves_nothing_running(registry: fx.RegistryServer) -> None:
    engine = start_engine(components=())
    try:
        client = engine.client()
        pull(client, f"{registry.host}/busybox")
        assert client.info()["Images"] == 1
        for _ in range(2):
            resp = client.stream("GET", f"/images/{registry.host}/busybox/get")
            first = resp.read_chunk()
            assert first
            resp.close()  # hang up with most of the tarball unsent
        with pytest.raises(NotFound, match="No such image: busybox-nope:latest"):
            client.stream("GET", "/images/get", query={"names": ["busybox-nope"]})
    finally:
        stop_engine(engine)  # fails if a writer thread kept the daemon from exiting


def test_docker_cli_import_login_push_pull(engine: EngineProcess,
                                           tls_registry: fx.RegistryServer,
                                           tmp_path: pathlib.Path) -> None:
    tarball = tmp_path / "rootfs.tar"
    tarball.write_bytes(files_tar({"etc/motd": b"hello\n"}))
    imported = run_docker(engine, "import", "-c", 'CMD ["cat", "/etc/motd"]', str(tarball),
                          "imp:1")
    assert imported.returncode == 0, imported.stderr
    image = imported.stdout.decode().strip()
    assert image.startswith("sha256:")
    host = tls_registry.host
    refused = run_docker(engine, "login", "-u", fx.USERNAME, "--password-stdin", host,
                         stdin=b"wrong\n")
    assert refused.returncode == 1 and b"401" in refused.stderr
    login = run_docker(engine, "login", "-u", fx.USERNAME, "--password-stdin", host,
                       stdin=fx.PASSWORD.encode() + b"\n")
    assert login.returncode == 0, login.stderr
    assert run_docker(engine, "tag", "imp:1", f"{host}/imp:1").returncode == 0
    pushed = run_docker(engine, "push", f"{host}/imp:1")
    assert pushed.returncode == 0, pushed.stderr
    assert f"The push refers to repository [{host}/imp]" in pushed.stdout.decode()
    assert run_docker(engine, "rmi", "imp:1", f"{host}/imp:1").returncode == 0
    pulled = run_docker(engine, "pull", f"{host}/imp:1")
    assert pulled.returncode == 0, pulled.stderr
    inspect = json.loads(run_docker(engine, "inspect", f"{host}/imp:1").stdout)
    assert inspect[0]["Id"] == image
    assert inspect[0]["Config"]["Cmd"] == ["cat", "/etc/motd"]
