"""Storage wired into the containers component, on a real engine with busybox: named and
anonymous volumes, binds, tmpfs, copy-up, read-only, volumes_from, shm_size, secrets and
configs, and the data-safety promises of issue 5. Driven by the docker CLI and our client.

After every test nothing may be left: no container dirs, mounts, runc state, monitor
processes, staged mounts or secret files (volumes are removed by the test's cleanup).
"""

from __future__ import annotations

import base64
import json
import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from pycompose.engine.errors import Conflict, InvalidArgument, NotFound
from tests.fixtures.docker_cli import ok, run_docker
from tests.fixtures.engine import EngineProcess
from tests.fixtures.storage import (
    cleanup,
    data_dir,
    load_volume_image,
    volume_names,
)

pytestmark = pytest.mark.root


@pytest.fixture
def eng(module_engine: EngineProcess) -> Iterator[EngineProcess]:
    yield module_engine
    cleanup(module_engine)


@pytest.fixture
def hostdir() -> Iterator[pathlib.Path]:
    path = pathlib.Path(tempfile.mkdtemp(prefix="pcstor-"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def fails(eng: EngineProcess, *args: str) -> str:
    proc = run_docker(eng, *args)
    assert proc.returncode != 0, proc.stdout.decode()
    return proc.stderr.decode()


# -- the docker CLI's forms --------------------------------------------------------------


def test_docker_cli_bind_volume_and_tmpfs_forms(eng: EngineProcess, hostdir: pathlib.Path) -> None:
    (hostdir / "hello.txt").write_text("from the host\n")
    assert ok(eng, "run", "--rm", "-v", f"{hostdir}:/app", "busybox", "cat", "/app/hello.txt") \
        == "from the host\n"
    assert ok(eng, "run", "--rm", "--mount", f"type=bind,source={hostdir},target=/app",
              "busybox", "sh", "-c", "echo back > /app/out.txt") == ""  # fmt: skip
    assert (hostdir / "out.txt").read_text() == "back\n"
    ok(eng, "volume", "create", "myvol2")
    ok(eng, "run", "--rm", "-v", "myvol2:/app", "busybox", "sh", "-c", "echo kept > /app/f")
    assert ok(eng, "run", "--rm", "--mount", "source=myvol2,target=/app", "busybox",
              "cat", "/app/f") == "kept\n"  # fmt: skip
    assert (data_dir(eng, "myvol2") / "f").read_text() == "kept\n"
    for form in (["--tmpfs", "/app"], ["--mount", "type=tmpfs,destination=/app"]):
        out = ok(eng, "run", "--rm", *form, "busybox", "sh", "-c", "grep ' /app ' /proc/mounts")
        assert out.split()[:3] == ["tmpfs", "/app", "tmpfs"], out


def test_inspect_mounts_and_volume_filter(eng: EngineProcess, hostdir: pathlib.Path) -> None:
    ok(eng, "create", "--name", "mnt", "-v", "named:/n:ro", "-v", f"{hostdir}:/h",
       "-v", "/anon", "--tmpfs", "/t", "--mount", "type=tmpfs,target=/m",
       "busybox", "true")  # fmt: skip
    mounts = {m["Destination"]: m for m in json.loads(ok(eng, "inspect", "mnt"))[0]["Mounts"]}
    # As in Docker: a --tmpfs is no mount point, a --mount tmpfs is.
    assert set(mounts) == {"/n", "/h", "/anon", "/m"}
    assert mounts["/m"] == {"Type": "tmpfs", "Source": "", "Destination": "/m", "Mode": "",
                            "RW": True, "Propagation": ""}  # fmt: skip
    assert mounts["/n"]["Type"] == "volume" and mounts["/n"]["Name"] == "named"
    assert not mounts["/n"]["RW"] and mounts["/n"]["Source"] == str(data_dir(eng, "named"))
    assert mounts["/h"]["Type"] == "bind" and mounts["/h"]["Source"] == str(hostdir)
    assert mounts["/h"]["RW"] and mounts["/h"]["Propagation"] == "rprivate"
    anon = mounts["/anon"]["Name"]
    assert len(anon) == 64 and anon in volume_names(eng)
    ok(eng, "create", "--name", "other", "busybox", "true")
    for value in ("named", anon, "/n", str(hostdir)):
        assert ok(eng, "ps", "-a", "--filter", f"volume={value}", "--format", "{{.Names}}") \
            == "mnt\n", value
    assert ok(eng, "ps", "-a", "--filter", "volume=nosuch", "-q") == ""


# -- copy-up, nocopy, read-only, tmpfs ---------------------------------------------------


def test_new_named_volume_is_filled_from_the_image_once(eng: EngineProcess) -> None:
    assert "root:x:0:0" in ok(eng, "run", "--rm", "-v", "etcvol:/etc", "busybox",
                              "cat", "/etc/passwd")  # fmt: skip
    host = data_dir(eng, "etcvol")
    assert "root:x:0:0" in (host / "passwd").read_text()
    # Once populated it is the volume's own content: no second copy-up.
    ok(eng, "run", "--rm", "-v", "etcvol:/etc", "busybox", "rm", "/etc/passwd")
    assert fails(eng, "run", "--rm", "-v", "etcvol:/etc", "busybox", "cat", "/etc/passwd")
    # nocopy: the new volume stays empty of the image's files.
    assert ok(eng, "run", "--rm", "-v", "bare:/etc:nocopy", "busybox",
              "sh", "-c", "test -e /etc/passwd || echo absent") == "absent\n"  # fmt: skip
    assert ok(eng, "run", "--rm", "--mount", "source=bare2,target=/etc,volume-nocopy",
              "busybox", "sh", "-c", "test -e /etc/passwd || echo absent") == "absent\n"
    assert not (data_dir(eng, "bare") / "passwd").exists()


def test_image_volume_becomes_a_filled_anonymous_volume(
    eng: EngineProcess, busybox_layout: pathlib.Path
) -> None:
    load_volume_image(eng, busybox_layout, "withvol:1", ["/data"], {"data/s": b"seed\n"})
    try:
        ok(eng, "create", "--name", "user", "withvol:1", "sh", "-c",
           "cat /data/s; echo more >> /data/s")  # fmt: skip
        assert ok(eng, "start", "-a", "user") == "seed\n"
        assert ok(eng, "start", "-a", "user") == "seed\nmore\n"
        mount = json.loads(ok(eng, "inspect", "user"))[0]["Mounts"]
        assert [(m["Type"], m["Destination"]) for m in mount] == [("volume", "/data")]
        assert (data_dir(eng, mount[0]["Name"]) / "s").read_text() == "seed\nmore\nmore\n"
    finally:
        run_docker(eng, "rm", "-fv", "user")
        ok(eng, "rmi", "withvol:1")


def test_read_only_mounts_are_read_only(eng: EngineProcess, hostdir: pathlib.Path) -> None:
    (hostdir / "keep").write_text("original\n")
    script = "echo x > /m/keep 2>/dev/null && echo wrote || echo refused"
    for form in (["-v", f"{hostdir}:/m:ro"],
                 ["--mount", f"type=bind,source={hostdir},target=/m,readonly"],
                 ["-v", "rovol:/m:ro"],
                 ["--mount", "source=rovol2,target=/m,readonly"]):  # fmt: skip
        assert ok(eng, "run", "--rm", *form, "busybox", "sh", "-c", script) == "refused\n", form
    assert (hostdir / "keep").read_text() == "original\n"


def test_tmpfs_is_gone_when_the_container_stops(eng: EngineProcess) -> None:
    ok(eng, "create", "--name", "tmp", "--tmpfs", "/scratch:size=1m,mode=1770",
       "--mount", "type=tmpfs,destination=/other,tmpfs-size=2m",
       "busybox", "sh", "-c",
       "ls /scratch /other; touch /scratch/a /other/b; stat -c %a /scratch; "
       "df -k /scratch /other | tail -2 | awk '{print $2}'")  # fmt: skip
    expected = "/other:\n\n/scratch:\n1770\n1024\n2048\n"
    assert ok(eng, "start", "-a", "tmp") == expected
    assert ok(eng, "start", "-a", "tmp") == expected  # nothing survived the stop
    mounts = pathlib.Path("/proc/self/mountinfo").read_text()
    assert str(eng.tmp) not in mounts


def test_missing_bind_source_short_form_creates_it_long_form_refuses(
    eng: EngineProcess, hostdir: pathlib.Path
) -> None:
    ok(eng, "run", "--rm", "-v", f"{hostdir}/made/here:/x", "busybox", "true")
    assert (hostdir / "made" / "here").is_dir()
    err = fails(eng, "run", "--rm", "--mount", f"type=bind,source={hostdir}/nope,target=/x",
                "busybox", "true")  # fmt: skip
    assert "bind source path does not exist" in err


def test_bad_mounts_are_refused_at_create(eng: EngineProcess) -> None:
    assert "not allowed" in fails(eng, "create", "-v", "xx:/proc/sys", "busybox", "true")
    assert "Duplicate mount point" in fails(eng, "create", "-v", "aa:/d", "-v", "bb:/d",
                                            "busybox", "true")  # fmt: skip
    # (the docker CLI takes any 404 for a missing image and tries to pull: ask the API)
    with pytest.raises(NotFound, match="No such container: nosuch"):
        eng.client().post("/containers/create", body={
            "Image": "busybox", "HostConfig": {"VolumesFrom": ["nosuch"], "Binds": ["cc:/c"]}})
    # Nothing was created by the failed requests.
    assert volume_names(eng) == set()


# -- lifetime of volumes ---------------------------------------------------------------


def test_recreating_a_container_keeps_its_named_volume(eng: EngineProcess) -> None:
    ok(eng, "run", "--name", "db", "-v", "dbdata:/var/db", "busybox", "sh", "-c",
       "echo row1 > /var/db/table")  # fmt: skip
    ok(eng, "rm", "-v", "db")
    assert "dbdata" in volume_names(eng)
    assert ok(eng, "run", "--rm", "--name", "db", "-v", "dbdata:/var/db", "busybox",
              "cat", "/var/db/table") == "row1\n"  # fmt: skip


def test_rm_v_removes_only_anonymous_volumes(
    eng: EngineProcess, busybox_layout: pathlib.Path
) -> None:
    load_volume_image(eng, busybox_layout, "anonimg:1", ["/img"], {"img/x": b"x"})
    try:
        ok(eng, "create", "--name", "c1", "-v", "keepme:/k", "-v", "/anon", "anonimg:1", "true")
        ok(eng, "create", "--name", "c2", "-v", "/anon2", "busybox", "true")
        mounts = {m["Destination"]: m["Name"]
                  for m in json.loads(ok(eng, "inspect", "c1"))[0]["Mounts"]}  # fmt: skip
        assert volume_names(eng) == {"keepme", mounts["/anon"], mounts["/img"],
                                     *_names(eng, "c2")}  # fmt: skip
        ok(eng, "rm", "c2")  # without -v: its anonymous volume stays
        anon2 = volume_names(eng) - set(mounts.values())
        assert len(anon2) == 1
        ok(eng, "rm", "-v", "c1")
        assert volume_names(eng) == {"keepme", *anon2}
        # --rm takes the anonymous volumes along too (as docker run --rm does).
        ok(eng, "run", "--rm", "-v", "/gone", "-v", "keepme:/k", "busybox", "true")
        assert volume_names(eng) == {"keepme", *anon2}
    finally:
        ok(eng, "rmi", "anonimg:1")


def _names(eng: EngineProcess, container: str) -> list[str]:
    return [m["Name"] for m in json.loads(ok(eng, "inspect", container))[0]["Mounts"]
            if m["Type"] == "volume"]  # fmt: skip


def test_volume_in_use_cannot_be_removed_or_pruned(eng: EngineProcess) -> None:
    ok(eng, "volume", "create", "external-data")  # made outside any container, as `external:`
    ok(eng, "volume", "create", "unused-named")
    ok(eng, "create", "--name", "holder", "-v", "busy:/b", "-v", "/held", "busybox", "true")
    held = _names(eng, "holder")
    ok(eng, "run", "--name", "brief", "-v", "/dropped", "busybox", "true")
    dropped = [n for n in _names(eng, "brief") if n not in held]
    ok(eng, "rm", "brief")  # its anonymous volume is now unused
    dangling = ok(eng, "volume", "ls", "-q", "--filter", "dangling=true").split()
    assert sorted(dangling) == sorted(["external-data", "unused-named", *dropped])
    client = eng.client()
    with pytest.raises(Conflict, match="volume is in use") as err:
        client.delete("/volumes/busy")
    assert err.value.status == 409
    assert "volume is in use" in fails(eng, "volume", "rm", "-f", "busy")
    pruned = client.post("/volumes/prune")
    assert pruned["VolumesDeleted"] == dropped
    assert volume_names(eng) == {"external-data", "unused-named", *held}
    # prune --all takes unused named volumes, never one in use.
    pruned = client.post("/volumes/prune", query={"filters": json.dumps({"all": ["true"]})})
    assert sorted(pruned["VolumesDeleted"]) == ["external-data", "unused-named"]
    assert volume_names(eng) == set(held)
    ok(eng, "rm", "holder")
    assert volume_names(eng) == set(held)


# -- volumes_from, shm_size, secrets and configs ------------------------------------------


def test_volumes_from(eng: EngineProcess, hostdir: pathlib.Path) -> None:
    ok(eng, "run", "--name", "src", "-v", "shared:/shared", "-v", "/anon",
       "-v", f"{hostdir}:/host", "busybox", "sh", "-c",
       "echo s > /shared/f; echo a > /anon/f; echo h > /host/f")  # fmt: skip
    assert ok(eng, "run", "--rm", "--volumes-from", "src", "busybox", "sh", "-c",
              "cat /shared/f /anon/f /host/f; echo w > /anon/g") == "s\na\nh\n"  # fmt: skip
    assert ok(eng, "run", "--rm", "--volumes-from", "src:ro", "busybox", "sh", "-c",
              "echo x > /shared/f 2>/dev/null || echo refused") == "refused\n"  # fmt: skip
    # The inherited anonymous volume is shared, and the borrower never removes it.
    assert ok(eng, "run", "--rm", "--volumes-from", "src", "busybox", "cat", "/anon/g") == "w\n"
    assert len(volume_names(eng)) == 2


def test_shm_size(eng: EngineProcess) -> None:
    df = "df -k /dev/shm | tail -1 | awk '{print $2}'"
    assert ok(eng, "run", "--rm", "busybox", "sh", "-c", df) == "65536\n"
    assert ok(eng, "run", "--rm", "--shm-size", "128m", "busybox", "sh", "-c", df) == "131072\n"


def _file(kind: str, name: str, data: bytes, target: str = "", uid: str = "0",
          gid: str = "0", mode: int = 0o444) -> dict[str, object]:  # fmt: skip
    key = "SecretName" if kind == "secret" else "ConfigName"
    return {key: name, "File": {"Name": target, "UID": uid, "GID": gid, "Mode": mode},
            "Data": base64.b64encode(data).decode()}  # fmt: skip


def test_secrets_and_configs_with_owner_and_mode(eng: EngineProcess) -> None:
    client = eng.client()
    body = {
        "Image": "busybox",
        "Cmd": ["sh", "-c", "for f in /run/secrets/db_password /run/secrets/api /app.conf "
                "/etc/app/other.conf; do stat -c '%n %u %g %a' $f; cat $f; echo; done; "
                "echo x > /run/secrets/api 2>/dev/null || echo read-only"],
        "Secrets": [_file("secret", "db_password", b"s3cret", uid="1000", gid="1001", mode=0o400),
                    _file("secret", "api", b"key", target="api")],
        "Configs": [_file("config", "app.conf", b"[app]\nx=1"),
                    _file("config", "other", b"o", target="/etc/app/other.conf", mode=0o640)],
    }  # fmt: skip
    cid = client.post("/containers/create", body=body, query={"name": "sec"})["Id"]
    inspect = client.get(f"/containers/{cid}/json")
    assert "s3cret" not in json.dumps(inspect) and "Secrets" not in inspect["Config"]
    for _ in range(2):  # the files outlive a stop and come back on the next start
        client.post(f"/containers/{cid}/start")
        client.post(f"/containers/{cid}/wait")
        out = ok(eng, "logs", "sec")
    assert out.count("/run/secrets/db_password 1000 1001 400\ns3cret\n") == 2
    assert "/run/secrets/api 0 0 444\nkey\n" in out
    assert "/app.conf 0 0 444\n[app]\nx=1\n" in out
    assert "/etc/app/other.conf 0 0 640\no\n" in out
    assert out.endswith("read-only\n")
    bad = dict(body, Secrets=[_file("secret", "x", b"1", uid="bob")])
    with pytest.raises(InvalidArgument, match="invalid uid"):
        client.post("/containers/create", body=bad)


# -- the local driver's options and subpath --------------------------------------------------


def test_driver_option_volumes_and_subpath(eng: EngineProcess, hostdir: pathlib.Path) -> None:
    ok(eng, "volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
       "--opt", "o=size=1m", "tv")  # fmt: skip
    probe = "grep ' /x ' /proc/mounts | cut -d' ' -f3; df -k /x | tail -1 | awk '{print $2}'"
    assert ok(eng, "run", "--rm", "-v", "tv:/x", "busybox", "sh", "-c", probe) == "tmpfs\n1024\n"
    # The volume's own tmpfs is mounted only while a container uses it.
    assert str(data_dir(eng, "tv")) not in pathlib.Path("/proc/self/mountinfo").read_text()
    ok(eng, "volume", "create", "--opt", "type=none", "--opt", "o=bind",
       "--opt", f"device={hostdir}", "bv")  # fmt: skip
    ok(eng, "run", "--rm", "-v", "bv:/b", "busybox", "sh", "-c", "echo via-volume > /b/f")
    assert (hostdir / "f").read_text() == "via-volume\n"
    (hostdir / "sub").mkdir()
    (hostdir / "sub" / "inner").write_text("deep\n")
    client = eng.client()
    mount = {"Type": "volume", "Source": "bv", "Target": "/s",
             "VolumeOptions": {"Subpath": "sub"}}  # fmt: skip
    cid = client.post("/containers/create", body={
        "Image": "busybox", "Cmd": ["ls", "/s"], "HostConfig": {"Mounts": [mount]}})["Id"]
    assert ok(eng, "start", "-a", cid) == "inner\n"
    bad = dict(mount, VolumeOptions={"Subpath": "../etc"})
    with pytest.raises(InvalidArgument, match="invalid subpath"):
        client.post("/containers/create", body={
            "Image": "busybox", "Cmd": ["true"], "HostConfig": {"Mounts": [bad]}})
    # Removing a bind-backed volume leaves the host directory's content alone.
    ok(eng, "rm", cid)
    ok(eng, "volume", "rm", "bv")
    assert (hostdir / "sub" / "inner").read_text() == "deep\n" and (hostdir / "f").exists()


def test_selinux_labels_accepted_with_a_warning(eng: EngineProcess, hostdir: pathlib.Path) -> None:
    proc = run_docker(eng, "create", "--name", "labelled", "-v", f"{hostdir}:/x:z",
                      "-v", "lv:/l:Z", "busybox", "true")  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    warnings = proc.stderr.decode()
    assert warnings.count("SELinux is not enabled") == 2, warnings
