"""Image references: the docker grammar and Docker Hub normalisation.

``busybox`` means ``docker.io/library/busybox:latest``; ``user/app`` means
``docker.io/user/app:latest``; a first component that looks like a host (it has a dot or a
port, or is ``localhost``) is the registry: ``localhost:5000/x:tag``. A reference may carry a
tag, a digest, or both (``name:tag@sha256:...``): the digest then identifies the content and
the tag is kept for display, as docker does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pycompose.engine.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX_LENGTH = 255

# The grammar of github.com/distribution/reference, spelled out once here.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[_.]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"

PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
DOMAIN_RE = re.compile(_DOMAIN)
TAG_RE = re.compile(_TAG, re.ASCII)
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
_ANY_DIGEST_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_HEX64_RE = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True)
class Reference:
    """A fully qualified image reference.

    ``domain`` is the registry host (with port), ``path`` the repository path inside it.
    ``tag`` is ``None`` only when a digest was given without a tag.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The repository name with its registry: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    @property
    def object(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest, else the tag."""
        if self.digest is not None:
            return self.digest
        return self.tag if self.tag is not None else DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        """The same repository with ``tag`` and no digest."""
        if not TAG_RE.fullmatch(tag):
            raise InvalidArgument(f"invalid tag format: {tag!r}")
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> Reference:
        """The same repository pinned to ``digest`` (the tag is dropped)."""
        validate_digest(digest)
        return Reference(self.domain, self.path, None, digest)


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is ``sha256:<64 lowercase hex>``; raise InvalidArgument otherwise."""
    if DIGEST_RE.fullmatch(digest):
        return digest
    algorithm = digest.split(":", 1)[0]
    if algorithm != "sha256" and _ANY_DIGEST_RE.fullmatch(digest):
        raise InvalidArgument(f"unsupported digest algorithm {algorithm!r} in {digest!r}")
    raise InvalidArgument(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")


def _split_domain(name: str) -> tuple[str, str]:
    """Split a name into registry and path, applying Docker Hub's defaults."""
    first, sep, rest = name.partition("/")
    looks_like_host = ("." in first or ":" in first or first == "localhost"
                       or first != first.lower())
    if not sep or not looks_like_host:
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    return domain, path


def _split_suffixes(text: str) -> tuple[str, str | None, str | None]:
    """Split ``name[:tag][@digest]`` into its three parts (no validation yet)."""
    name, at, digest = text.partition("@")
    tag: str | None = None
    # A colon after the last slash starts the tag; one before it belongs to a port.
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1:]
    return name, tag, (digest if at else None)


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise a reference the way ``docker pull`` does.

    With ``default_tag`` (the default) a name without tag or digest gets ``latest``.
    Raises InvalidArgument naming the problem for anything outside the grammar.
    """
    if not text:
        raise InvalidArgument("invalid reference format: empty reference")
    if text != text.strip():
        raise InvalidArgument(f"invalid reference format: {text!r} has surrounding whitespace")
    if _HEX64_RE.fullmatch(text):
        raise InvalidArgument(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    name, tag, digest = _split_suffixes(text)
    if digest is not None:
        validate_digest(digest)
    if tag is not None and not TAG_RE.fullmatch(tag):
        raise InvalidArgument(f"invalid reference format: bad tag {tag!r} in {text!r}")
    if not name:
        raise InvalidArgument(f"invalid reference format: no repository name in {text!r}")
    domain, path = _split_domain(name)
    if not DOMAIN_RE.fullmatch(domain):
        raise InvalidArgument(f"invalid reference format: bad registry host {domain!r} in {text!r}")
    if path != path.lower() and PATH_RE.fullmatch(path.lower()):
        raise InvalidArgument(
            f"invalid reference format: repository name ({path}) must be lowercase")
    if not PATH_RE.fullmatch(path):
        raise InvalidArgument(f"invalid reference format: bad repository name {path!r} in {text!r}")
    if len(f"{domain}/{path}") > NAME_MAX_LENGTH:
        raise InvalidArgument(
            f"invalid reference format: repository name longer than {NAME_MAX_LENGTH} characters")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def familiar_repository(ref: Reference) -> str:
    """The short repository name people type: ``busybox``, ``user/app``, ``localhost:5000/x``."""
    if ref.domain != DEFAULT_DOMAIN:
        return ref.name
    short = ref.path.removeprefix(OFFICIAL_REPO_PREFIX)
    return short if "/" not in short else ref.path


def familiar_name(ref: Reference) -> str:
    """The reference as docker displays it: ``busybox:latest``, ``user/app@sha256:...``."""
    out = familiar_repository(ref)
    if ref.tag is not None:
        out += f":{ref.tag}"
    if ref.digest is not None:
        out += f"@{ref.digest}"
    return out


def normalize(text: str) -> str:
    """Shorthand: the fully qualified string form of ``text``."""
    return str(parse_reference(text))
