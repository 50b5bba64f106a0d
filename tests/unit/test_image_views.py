"""Docker-shaped image views and list/prune filters, on hand-made image records."""

from __future__ import annotations

from typing import Any

import pytest

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.images import views
from pycompose.engine.images.api import decode_registry_auth, pull_reference, registry_detail
from pycompose.engine.images.store import ImageRecord

DIFF = "sha256:" + "1" * 64


def record(ident: str = "a", *, tags: tuple[str, ...] = (), digests: tuple[str, ...] = (),
           created: str = "2024-01-01T00:00:00Z", config: dict[str, Any] | None = None,
           history: list[dict[str, Any]] | None = None, layers: int = 1) -> ImageRecord:
    cfg: dict[str, Any] = {"architecture": "amd64", "os": "linux", "created": created,
                           "config": config if config is not None else {"Cmd": ["sh"]},
                           "rootfs": {"type": "layers", "diff_ids": [DIFF] * layers}}
    if history is not None:
        cfg["history"] = history
    return ImageRecord(
        id="sha256:" + ident * 64, config=cfg, config_digest="sha256:" + ident * 64,
        manifest_digest="sha256:" + "f" * 64, layer_chain_ids=(DIFF,) * layers,
        repo_tags=tags, repo_digests=digests, created=created, size=1234,
        diff_ids=(DIFF,) * layers)


def test_parse_created_handles_nanoseconds_and_zones() -> None:
    parsed = views.parse_created("2024-01-02T03:04:05.123456789Z")
    assert parsed is not None and parsed.timestamp() == pytest.approx(1704164645.123456)
    zoned = views.parse_created("2024-01-02T04:04:05+01:00")
    assert zoned is not None and int(zoned.timestamp()) == 1704164645
    assert views.parse_created("") is None
    assert views.parse_created("yesterday") is None


def test_summary_shape() -> None:
    rec = record(tags=("busybox:latest",), digests=("busybox@sha256:" + "d" * 64,),
                 config={"Labels": {"a": "b"}})
    assert views.image_summary(rec) == {
        "Containers": -1, "Created": 1704067200, "Id": rec.id, "Labels": {"a": "b"},
        "ParentId": "", "RepoDigests": list(rec.repo_digests), "RepoTags": ["busybox:latest"],
        "SharedSize": -1, "Size": 1234,
    }
    assert views.image_summary(rec, tags=[])["RepoTags"] == []


def test_inspect_fills_docker_config_defaults() -> None:
    rec = record(tags=("x:1",), config={"Cmd": ["sh"], "Env": ["A=1"]},
                 history=[{"created": "2024-01-01T00:00:00Z", "comment": "imported"}])
    doc = views.image_inspect(rec, {"UpperDir": "/l/diff"})
    assert doc["Config"]["Cmd"] == ["sh"] and doc["Config"]["Env"] == ["A=1"]
    assert doc["Config"]["Entrypoint"] is None and doc["Config"]["WorkingDir"] == ""
    assert doc["RootFS"] == {"Type": "layers", "Layers": [DIFF]}
    assert doc["GraphDriver"] == {"Name": "overlay2", "Data": {"UpperDir": "/l/diff"}}
    assert doc["Comment"] == "imported"
    assert (doc["Architecture"], doc["Os"], doc["Size"]) == ("amd64", "linux", 1234)
    assert "Variant" not in doc


def test_history_newest_first_with_empty_layers() -> None:
    rec = record(tags=("x:1",), layers=2, history=[
        {"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs"},
        {"created": "2024-01-01T00:00:01Z", "created_by": "ENV A=1", "empty_layer": True},
        {"created": "2024-01-01T00:00:02Z", "created_by": "RUN make", "comment": "c"},
    ])
    items = views.image_history(rec, [100, 7])
    assert [(i["Id"], i["CreatedBy"], i["Size"]) for i in items] == [
        (rec.id, "RUN make", 7), ("<missing>", "ENV A=1", 0), ("<missing>", "ADD rootfs", 100)]
    assert items[0]["Tags"] == ["x:1"] and items[1]["Tags"] is None
    assert items[0]["Created"] == 1704067202 and items[0]["Comment"] == "c"


def test_history_without_history_one_step_per_layer() -> None:
    items = views.image_history(record(layers=2), [5, 6])
    assert [i["Size"] for i in items] == [6, 5]
    assert items[0]["Tags"] is None


@pytest.mark.parametrize(("pattern", "tag", "match"), [
    ("busybox", "busybox:latest", True),
    ("busybox:lat*", "busybox:latest", True),
    ("busy*", "busybox:latest", True),
    ("*", "user/app:1", False),  # '*' does not cross '/'
    ("*/*", "user/app:1", True),
    ("user/app:[0-9]", "user/app:1", True),
    ("127.0.0.1:5000/box", "127.0.0.1:5000/box:v1", True),
    ("other", "busybox:latest", False),
])  # fmt: skip
def test_reference_filter_globs(pattern: str, tag: str, match: bool) -> None:
    assert views.reference_matches(pattern, tag) is match


def _filter(filters: dict[str, list[str]]) -> views.ListFilter:
    created = {"old": 100, "new": 300}
    return views.list_filter(filters, created_of=created.__getitem__,
                             parse_time=lambda text: int(text))


def test_list_filter_selects_and_trims_tags() -> None:
    rec = record(tags=("app:1", "other:2"), config={"Labels": {"tier": "web", "x": ""}})
    assert _filter({}).select(rec) == ["app:1", "other:2"]
    assert _filter({"reference": ["app"]}).select(rec) == ["app:1"]
    assert _filter({"reference": ["nothing"]}).select(rec) is None
    assert _filter({"label": ["tier=web", "x"]}).select(rec) is not None
    assert _filter({"label": ["tier=db"]}).select(rec) is None
    assert _filter({"dangling": ["true"]}).select(rec) is None
    assert _filter({"dangling": ["false"]}).select(rec) is not None
    assert _filter({"dangling": ["true"]}).select(record()) == []


def test_list_filter_time_bounds() -> None:
    rec = record(created="1970-01-01T00:03:20Z")  # 200
    assert _filter({"before": ["new"]}).select(rec) is not None
    assert _filter({"before": ["old"]}).select(rec) is None
    assert _filter({"since": ["old"]}).select(rec) is not None
    assert _filter({"since": ["new"]}).select(rec) is None
    assert _filter({"until": ["150"]}).select(rec) is None
    assert _filter({"until": ["250"]}).select(rec) is not None


def test_list_filter_errors() -> None:
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        _filter({"colour": ["red"]})
    with pytest.raises(InvalidArgument, match="invalid filter 'dangling=maybe'"):
        _filter({"dangling": ["maybe"]})
    with pytest.raises(InvalidArgument, match="takes one value"):
        _filter({"before": ["old", "new"]})
    with pytest.raises(InvalidArgument, match="pattern"):
        views.reference_matches("[abc", "a:latest")


def test_prune_filter() -> None:
    parse = int
    tagged = record(tags=("a:1",))
    pinned = record(digests=("a@sha256:" + "d" * 64,))
    loose = record(config={"Labels": {"keep": "yes"}})
    default = views.prune_filter({}, parse)
    assert [default.candidate(r) for r in (tagged, pinned, loose)] == [False, False, True]
    everything = views.prune_filter({"dangling": ["false"]}, parse)
    assert everything.candidate(tagged) and everything.candidate(pinned)
    assert not views.prune_filter({"label!": ["keep"]}, parse).candidate(loose)
    assert views.prune_filter({"label": ["keep=yes"]}, parse).candidate(loose)
    assert not views.prune_filter({"until": ["1000"]}, parse).candidate(loose)
    with pytest.raises(InvalidArgument, match="invalid filter 'reference'"):
        views.prune_filter({"reference": ["x"]}, parse)


def test_pull_reference_combines_from_image_and_tag() -> None:
    assert str(pull_reference("busybox", "")) == "docker.io/library/busybox:latest"
    assert str(pull_reference("busybox", "1.36")) == "docker.io/library/busybox:1.36"
    assert str(pull_reference("h:5000/x:old", "new")) == "h:5000/x:new"
    digest = "sha256:" + "e" * 64
    assert str(pull_reference("busybox", digest)) == f"docker.io/library/busybox@{digest}"
    with pytest.raises(InvalidArgument, match="invalid reference format"):
        pull_reference("Bad/Ref", "")


def test_registry_auth_header() -> None:
    import base64
    import json

    def enc(doc: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    creds = decode_registry_auth(enc({"username": "u", "password": "p", "serveraddress": "h"}))
    assert creds is not None and (creds.username, creds.password) == ("u", "p")
    assert decode_registry_auth(enc({})) is None
    assert decode_registry_auth(None) is None
    with pytest.raises(InvalidArgument, match="X-Registry-Auth"):
        decode_registry_auth("%%%")
    with pytest.raises(InvalidArgument, match="identity"):
        decode_registry_auth(enc({"identitytoken": "t"}))


def test_registry_detail_rewords_registry_errors() -> None:
    err = Exception("manifest h/x:latest: 404 MANIFEST_UNKNOWN: manifest unknown")
    assert registry_detail(err) == "manifest unknown: manifest unknown"
    assert registry_detail(Exception("other")) == "other"
