"""Docker reference grammar and Docker Hub normalisation."""

from __future__ import annotations

import pytest

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.images.reference import (
    Reference,
    familiar_name,
    familiar_repository,
    normalize,
    parse_reference,
    validate_digest,
)

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", Reference("docker.io", "library/busybox", "latest", None)),
        ("busybox:1.36", Reference("docker.io", "library/busybox", "1.36", None)),
        ("user/app", Reference("docker.io", "user/app", "latest", None)),
        ("user/app:v2", Reference("docker.io", "user/app", "v2", None)),
        ("docker.io/busybox", Reference("docker.io", "library/busybox", "latest", None)),
        ("index.docker.io/busybox", Reference("docker.io", "library/busybox", "latest", None)),
        ("index.docker.io/user/app:x", Reference("docker.io", "user/app", "x", None)),
        ("docker.io/library/busybox:latest",
         Reference("docker.io", "library/busybox", "latest", None)),
        ("localhost/x", Reference("localhost", "x", "latest", None)),
        ("localhost:5000/x:tag", Reference("localhost:5000", "x", "tag", None)),
        ("127.0.0.1:5000/a/b/c", Reference("127.0.0.1:5000", "a/b/c", "latest", None)),
        ("quay.io/org/img@" + D, Reference("quay.io", "org/img", None, D)),
        ("host/path@" + D, Reference("docker.io", "host/path", None, D)),
        ("reg.example.com/path@" + D, Reference("reg.example.com", "path", None, D)),
        ("busybox:1.36@" + D, Reference("docker.io", "library/busybox", "1.36", D)),
        ("Registry.Example.com/a", Reference("Registry.Example.com", "a", "latest", None)),
        ("[::1]:5000/x", Reference("[::1]:5000", "x", "latest", None)),
        ("a.b-c/d__e", Reference("a.b-c", "d__e", "latest", None)),
        ("x/a__b.c---d:T_a.g-1", Reference("docker.io", "x/a__b.c---d", "T_a.g-1", None)),
        # Without a slash even a dotted word is a Docker Hub name, and "localhost:5000"
        # alone is the repository "localhost" with tag "5000", as docker reads it.
        ("my.image", Reference("docker.io", "library/my.image", "latest", None)),
        ("localhost:5000", Reference("docker.io", "library/localhost", "5000", None)),
    ],
)
def test_parse_and_normalise(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_str_is_fully_qualified() -> None:
    assert str(parse_reference("busybox")) == "docker.io/library/busybox:latest"
    assert normalize("user/app:1") == "docker.io/user/app:1"
    assert str(parse_reference("busybox:1@" + D)) == f"docker.io/library/busybox:1@{D}"
    assert str(parse_reference("x.io/y@" + D)) == f"x.io/y@{D}"
    assert parse_reference("busybox").name == "docker.io/library/busybox"


def test_no_default_tag_on_request() -> None:
    ref = parse_reference("busybox", default_tag=False)
    assert ref.tag is None
    assert ref.object == "latest"
    assert str(ref) == "docker.io/library/busybox"


def test_object_prefers_digest() -> None:
    assert parse_reference("busybox:1@" + D).object == D
    assert parse_reference("busybox:1").object == "1"


@pytest.mark.parametrize(
    ("text", "familiar"),
    [
        ("busybox", "busybox:latest"),
        ("docker.io/library/busybox:1", "busybox:1"),
        ("index.docker.io/user/app", "user/app:latest"),
        ("docker.io/library/a/b", "library/a/b:latest"),
        ("localhost:5000/x:tag", "localhost:5000/x:tag"),
        ("quay.io/org/img@" + D, f"quay.io/org/img@{D}"),
    ],
)
def test_familiar_name(text: str, familiar: str) -> None:
    assert familiar_name(parse_reference(text)) == familiar


def test_familiar_repository() -> None:
    assert familiar_repository(parse_reference("busybox:1")) == "busybox"
    assert familiar_repository(parse_reference("localhost/x")) == "localhost/x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Busybox", "must be lowercase"),
        ("user/App:1", "must be lowercase"),
        ("localhost:5000/UPPER", "must be lowercase"),
        ("busybox:", "bad tag"),
        ("busybox:-x", "bad tag"),
        ("busybox:" + "a" * 129, "bad tag"),
        ("busybox:tag with space", "bad tag"),
        ("busybox:tä", "bad tag"),
        (" busybox", "whitespace"),
        ("a//b", "bad repository name"),
        ("a/b/", "bad repository name"),
        ("-a", "bad repository name"),
        ("a_-b", "bad repository name"),
        ("a___b", "bad repository name"),
        ("busybox@sha256:abc", "invalid digest"),
        ("busybox@sha256:../../x", "invalid digest"),
        ("busybox@sha512:" + "a" * 128, "unsupported digest algorithm"),
        ("busybox@" + "sha256:" + "AB" * 32, "invalid digest"),
        (":tag", "no repository name"),
        ("@" + D, "no repository name"),
        ("-bad.host/x", "bad registry host"),
        ("host:port/x", "bad registry host"),
        ("a_b.io/x", "bad registry host"),
        ("ab" * 32, "64-byte hexadecimal"),
        ("x.io/" + "a" * 260, "longer than 255"),
    ],
)
def test_rejected(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_reference(text)


def test_with_tag_and_digest() -> None:
    ref = parse_reference("busybox:1")
    assert ref.with_tag("2") == Reference("docker.io", "library/busybox", "2", None)
    assert ref.with_digest(D) == Reference("docker.io", "library/busybox", None, D)
    with pytest.raises(InvalidArgument):
        ref.with_tag("bad tag")
    with pytest.raises(InvalidArgument):
        ref.with_digest("sha256:1234")


def test_validate_digest() -> None:
    assert validate_digest(D) == D
    for bad in ("sha256:", "sha256:" + "g" * 64, "md5", "sha256:" + "a" * 63, "../x"):
        with pytest.raises(InvalidArgument):
            validate_digest(bad)
