"""Docker's ``Binds``, ``Mounts``, ``Tmpfs``, ``Volumes`` and ``VolumesFrom``, resolved.

:func:`resolve_mounts` turns the mount fields of a create request (plus the image's
``VOLUME`` entries) into :class:`ResolvedMount` values: bind sources normalised, named
volumes created when missing, anonymous volumes made, and every volume recorded as used by
the container. It mounts nothing. :class:`MountStager` (see ``stage.py``) then makes them
real for a start and tears them down afterwards.

Targets must be absolute; ``/``, ``/proc``, ``/sys`` and ``/dev`` themselves, and anything
below ``/proc`` or ``/sys``, are refused (mounting over them can hide the runtime's own
protections). ``:z``/``:Z`` relabelling is accepted with a warning where SELinux is absent
and refused where it is present (we do not relabel).

How the container component uses storage (``volumes = ctx.services["volumes"]``,
``stager = ctx.services["mounts"]``)::

    create:  mounts = resolve_mounts(host_config, image_config, container_id=cid,
                                     volumes=volumes, container_volumes=config.get("Volumes"),
                                     volumes_from=lookup, warnings=warnings)
             stager.set_files(cid, secrets.parse_api(body.get("Secrets"), body.get("Configs")))
             record: [m.to_json() for m in mounts]; inspect "Mounts": [m.inspect(volumes) ...]
    start:   specs = stager.prepare(cid, mounts, rootfs=str(merged))  # after the rootfs mount
             ContainerSpecParams(mounts=(*etc_files, *specs), shm_size=shm_size(host_config))
    exit:    stager.release(cid, mounts)             # after runc delete, before the rootfs unmount
    rm:      stager.forget(cid, mounts); release_volumes(mounts, cid, volumes, remove_anonymous=v)
    restart of the daemon: volumes.reconcile(all_ids); stager.adopt(cid, mounts) for each
             running one; stager.cleanup_stale(running_ids, all_ids)
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pycompose.engine.api.router import ZERO, check_fields
from pycompose.engine.errors import InvalidArgument
from pycompose.storage.volumes import VolumeStore, check_name

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_BIND_MODES = frozenset({"ro", "rw", "z", "Z", *PROPAGATIONS})
_VOLUME_MODES = frozenset({"ro", "rw", "z", "Z", "nocopy"})
_TMPFS_FLAGS = frozenset(
    {
        "rw",
        "ro",
        "exec",
        "noexec",
        "suid",
        "nosuid",
        "dev",
        "nodev",
        "atime",
        "noatime",
        "relatime",
        "strictatime",
        "nodiratime",
    }
)
_TMPFS_KEYS = frozenset({"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks"})
_FORBIDDEN = ("/proc", "/sys", "/dev")
SELINUX_ENFORCE = "/sys/fs/selinux/enforce"

MountsLookup = Callable[[str], Sequence[Mapping[str, Any]]]
"""Given a container name or id, its mount points in Docker's inspect shape (``Mounts``)."""


@dataclass(frozen=True)
class ResolvedMount:
    """One mount of a container, resolved but not yet made.

    ``type``: ``bind``, ``volume`` or ``tmpfs``. ``source``: the normalised host path (bind;
    its symlinks are resolved at each start) or
    the volume name (volume). ``create_source``: make a missing host directory at start (the
    short ``-v`` syntax). ``copy_up``: fill an empty volume from the image at ``target`` on
    its first mount. ``options``: tmpfs options. ``mode``: Docker's ``Mode`` text.
    """

    type: str
    target: str
    source: str = ""
    read_only: bool = False
    propagation: str = ""
    non_recursive: bool = False
    options: tuple[str, ...] = ()
    subpath: str = ""
    copy_up: bool = False
    create_source: bool = False
    anonymous: bool = False
    mode: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict, for the container's record (:meth:`from_json` reads it back)."""
        doc = dict(self.__dict__)
        doc["options"] = list(self.options)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ResolvedMount:
        """Read back :meth:`to_json`."""
        return cls(**{**doc, "options": tuple(doc.get("options") or ())})

    def inspect(self, volumes: VolumeStore | None = None) -> dict[str, Any]:
        """Docker's ``MountPoint`` (container inspect ``Mounts``)."""
        doc: dict[str, Any] = {
            "Type": self.type,
            "Source": self.source,
            "Destination": self.target,
            "Mode": self.mode,
            "RW": not self.read_only,
            "Propagation": self.propagation if self.type == "bind" else "",
        }
        if self.type == "volume":
            doc["Name"] = self.source
            doc["Source"] = str(volumes.data_dir(self.source)) if volumes else ""
            doc["Driver"] = "local"
        if self.type == "tmpfs":
            doc["Source"] = ""
        return doc


def host_path(path: str) -> str:
    """An absolute host path, normalised (``..`` and ``//`` folded, symlinks kept)."""
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid mount path {path!r}: must be absolute")
    return "/" + posixpath.normpath(path).lstrip("/")


def selinux_enabled() -> bool:
    """Whether SELinux is active on this host."""
    return os.path.exists(SELINUX_ENFORCE)


def check_target(target: str) -> str:
    """A normalised absolute container path that may be mounted on."""
    if not isinstance(target, str) or not target.startswith("/"):
        raise InvalidArgument(f"invalid mount config: mount path {target!r} must be absolute")
    norm = posixpath.normpath(target)
    norm = "/" + norm.lstrip("/")
    if norm == "/":
        raise InvalidArgument("invalid mount config: cannot mount over '/'")
    for bad in _FORBIDDEN:
        if norm == bad or (bad != "/dev" and norm.startswith(bad + "/")):
            raise InvalidArgument(
                f"invalid mount config: mounting over {norm} is not allowed "
                f"(it belongs to the container runtime)"
            )
    return norm


def _relabel(words: set[str], spec: str, warnings: list[str]) -> None:
    if not words & {"z", "Z"}:
        return
    if selinux_enabled():
        raise InvalidArgument(f"{spec}: SELinux relabelling (:z/:Z) is not supported by pycompose")
    warnings.append(f"{spec}: :z/:Z ignored, SELinux is not enabled on this host")


# -- parsing --------------------------------------------------------------------------------


def parse_bind(spec: str, warnings: list[str]) -> ResolvedMount:
    """One ``Binds`` entry: ``host-path-or-volume:target[:opts]``."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    source, target = parts[0], check_target(parts[1])
    words = set(parts[2].split(",")) if len(parts) == 3 else set()
    is_bind = source.startswith("/")
    allowed = _BIND_MODES if is_bind else _VOLUME_MODES
    if not words <= allowed or len(words & {"ro", "rw"}) > 1 or "" in words:
        raise InvalidArgument(f"invalid mode: {parts[2]} in volume specification '{spec}'")
    props = words & set(PROPAGATIONS)
    if len(props) > 1:
        raise InvalidArgument(f"invalid mode: {parts[2]} (more than one propagation)")
    _relabel(words, spec, warnings)
    mode = parts[2] if len(parts) == 3 else ""
    if is_bind:
        return ResolvedMount(
            "bind",
            target,
            host_path(source),
            "ro" in words,
            next(iter(props), "rprivate"),
            create_source=True,
            mode=mode,
        )
    check_name(source)
    return ResolvedMount(
        "volume", target, source, "ro" in words, copy_up="nocopy" not in words, mode=mode
    )


_MOUNT_FIELDS = {
    "Type",
    "Source",
    "Target",
    "ReadOnly",
    "Consistency",
    "BindOptions",
    "VolumeOptions",
    "TmpfsOptions",
}


def parse_mount(
    m: Mapping[str, Any], volumes: VolumeStore, created: list[str] | None = None
) -> ResolvedMount:
    """One ``Mounts`` entry (``--mount``); anonymous volumes it makes are added to
    ``created``."""
    if not isinstance(m, Mapping):
        raise InvalidArgument("HostConfig.Mounts entries must be objects")
    check_fields(m, where="HostConfig.Mounts", known=_MOUNT_FIELDS)
    kind, source = m.get("Type") or "", m.get("Source") or ""
    target = check_target(m.get("Target") or "")
    ro = bool(m.get("ReadOnly"))
    if kind == "bind":
        return _mount_bind(m, source, target, ro)
    if kind == "volume":
        return _mount_volume(m, source, target, ro, volumes, created)
    if kind == "tmpfs":
        if source:
            raise InvalidArgument(
                f'invalid mount config for type "tmpfs": source {source!r} must be empty'
            )
        return _mount_tmpfs(m, target, ro)
    raise InvalidArgument(f"mount type {kind!r} is not supported (bind, volume, tmpfs)")


def _sub(
    m: Mapping[str, Any], key: str, known: set[str], unsupported: dict[str, Any] | None = None
) -> Mapping[str, Any]:
    sub = m.get(key) or {}
    if not isinstance(sub, Mapping):
        raise InvalidArgument(f"HostConfig.Mounts.{key} must be an object")
    check_fields(sub, where=f"HostConfig.Mounts.{key}", known=known, unsupported=unsupported)
    return sub


def _mount_bind(m: Mapping[str, Any], source: str, target: str, ro: bool) -> ResolvedMount:
    if m.get("VolumeOptions") or m.get("TmpfsOptions"):
        raise InvalidArgument('invalid mount config for type "bind": only BindOptions apply')
    opts = _sub(
        m,
        "BindOptions",
        {"Propagation", "NonRecursive", "CreateMountpoint"},
        {"ReadOnlyNonRecursive": ZERO, "ReadOnlyForceRecursive": ZERO},
    )
    if not source.startswith("/"):
        raise InvalidArgument(
            f'invalid mount config for type "bind": invalid mount path: '
            f"'{source}' mount path must be absolute"
        )
    prop = opts.get("Propagation") or "rprivate"
    if prop not in PROPAGATIONS:
        raise InvalidArgument(f"invalid propagation mode: {prop}")
    path = host_path(source)
    create = bool(opts.get("CreateMountpoint"))
    if not create and not os.path.exists(path):
        raise InvalidArgument(
            f'invalid mount config for type "bind": bind source path does not exist: {source}'
        )
    return ResolvedMount(
        "bind", target, path, ro, prop, bool(opts.get("NonRecursive")), create_source=create
    )


def _mount_volume(
    m: Mapping[str, Any],
    source: str,
    target: str,
    ro: bool,
    volumes: VolumeStore,
    created: list[str] | None,
) -> ResolvedMount:
    if m.get("BindOptions") or m.get("TmpfsOptions"):
        raise InvalidArgument('invalid mount config for type "volume": only VolumeOptions apply')
    opts = _sub(m, "VolumeOptions", {"NoCopy", "Labels", "DriverConfig", "Subpath"})
    subpath = opts.get("Subpath") or ""
    if subpath and (subpath.startswith("/") or ".." in subpath.split("/")):
        raise InvalidArgument(f"invalid subpath {subpath!r}: must be relative, without '..'")
    driver = opts.get("DriverConfig") or {}
    if not isinstance(driver, Mapping):
        raise InvalidArgument("VolumeOptions.DriverConfig must be an object")
    if source:
        check_name(source)
    anonymous = not source
    if not source and (opts.get("Labels") or driver):
        source = volumes.create(
            None,
            labels=opts.get("Labels") or {},
            options=driver.get("Options") or {},
            driver=driver.get("Name") or "",
        ).name
        if created is not None:
            created.append(source)
    elif source and not volumes.exists(source):
        volumes.create(
            source,
            labels=opts.get("Labels") or {},
            options=driver.get("Options") or {},
            driver=driver.get("Name") or "",
        )
    return ResolvedMount(
        "volume",
        target,
        source,
        ro,
        copy_up=not opts.get("NoCopy"),
        subpath=subpath,
        anonymous=anonymous,
    )


def _mount_tmpfs(m: Mapping[str, Any], target: str, ro: bool) -> ResolvedMount:
    if m.get("BindOptions") or m.get("VolumeOptions"):
        raise InvalidArgument('invalid mount config for type "tmpfs": only TmpfsOptions apply')
    opts = _sub(m, "TmpfsOptions", {"SizeBytes", "Mode", "Options"})
    words: list[str] = []
    size, mode = opts.get("SizeBytes") or 0, opts.get("Mode") or 0
    if not isinstance(size, int) or size < 0:
        raise InvalidArgument(f"invalid TmpfsOptions.SizeBytes {size!r}")
    if not isinstance(mode, int) or not 0 <= mode <= 0o7777:
        raise InvalidArgument(f"invalid TmpfsOptions.Mode {mode!r}")
    if size:
        words.append(f"size={size}")
    if mode:
        words.append(f"mode={mode:o}")
    for pair in opts.get("Options") or []:
        if not isinstance(pair, list) or not 1 <= len(pair) <= 2:
            raise InvalidArgument(f"invalid TmpfsOptions.Options entry {pair!r}")
        words.append("=".join(str(p) for p in pair))
    return ResolvedMount("tmpfs", target, read_only=ro, options=tmpfs_options(words, target))


def tmpfs_options(words: Sequence[str], target: str) -> tuple[str, ...]:
    """Check tmpfs mount options; ``ro`` is carried by ``read_only``, not here."""
    out = []
    for word in words:
        key, eq, value = word.partition("=")
        if (eq and key in _TMPFS_KEYS and value) or (not eq and word in _TMPFS_FLAGS):
            if key == "mode" and not all(c in "01234567" for c in value):
                raise InvalidArgument(f"tmpfs {target}: invalid mode {value!r} (octal)")
            if word not in ("ro", "rw"):
                out.append(word)
            continue
        raise InvalidArgument(f"tmpfs {target}: unsupported option {word!r}")
    return tuple(out)


def parse_tmpfs(tmpfs: Mapping[str, str]) -> list[ResolvedMount]:
    """``HostConfig.Tmpfs``: ``{"/app": "size=64m,mode=1777"}``."""
    out = []
    for target, text in tmpfs.items():
        words = [w for w in str(text or "").split(",") if w]
        out.append(
            ResolvedMount(
                "tmpfs",
                check_target(target),
                read_only="ro" in words,
                options=tmpfs_options(words, target),
            )
        )
    return out


def parse_volumes_from(entries: Sequence[str], lookup: MountsLookup | None) -> list[ResolvedMount]:
    """``VolumesFrom``: ``container[:ro|:rw]``; the other container's volumes and binds."""
    out = []
    for entry in entries:
        name, _, mode = str(entry).partition(":")
        if mode not in ("", "ro", "rw") or not name:
            raise InvalidArgument(f"invalid VolumesFrom entry {entry!r}: use container[:ro|:rw]")
        if lookup is None:
            raise InvalidArgument("VolumesFrom cannot be honoured: no container lookup given")
        for mp in lookup(name):
            kind = mp.get("Type")
            if kind not in ("bind", "volume"):
                continue
            ro = mode == "ro" or (mode == "" and not mp.get("RW", True))
            source = mp.get("Name") if kind == "volume" else mp.get("Source")
            prop = str(mp.get("Propagation") or "rprivate") if kind == "bind" else ""
            out.append(
                ResolvedMount(
                    str(kind),
                    check_target(str(mp["Destination"])),
                    str(source),
                    ro,
                    prop,
                    mode=mode or str(mp.get("Mode", "")),
                )
            )
    return out


# -- resolution ------------------------------------------------------------------------------


def resolve_mounts(
    host_config: Mapping[str, Any],
    image_config: Mapping[str, Any] | None,
    *,
    container_id: str,
    volumes: VolumeStore,
    rootfs: str | None = None,
    container_volumes: Mapping[str, Any] | None = None,
    volumes_from: MountsLookup | None = None,
    warnings: list[str] | None = None,
) -> list[ResolvedMount]:
    """All mounts of a container being created, parents before children.

    ``container_volumes`` is the request's ``Config.Volumes``; ``image_config`` the image's
    config (its ``Volumes`` become anonymous volumes unless something else is mounted
    there). ``rootfs`` is accepted for the caller's symmetry; copy-up reads it at start.
    Named volumes that do not exist are created; every volume is acquired for
    ``container_id`` (on error, whatever this call created or acquired is undone).
    """
    del rootfs  # copy-up happens in MountStager.prepare, when the rootfs is mounted
    warns = warnings if warnings is not None else []
    created: list[str] = []  # anonymous volumes made by this call, removed if it fails
    try:
        return _resolve(
            host_config,
            image_config,
            container_id,
            volumes,
            container_volumes,
            volumes_from,
            warns,
            created,
        )
    except BaseException:
        for name in created:
            volumes.remove(name, force=True)
        raise


def _resolve(
    host_config: Mapping[str, Any],
    image_config: Mapping[str, Any] | None,
    container_id: str,
    volumes: VolumeStore,
    container_volumes: Mapping[str, Any] | None,
    volumes_from: MountsLookup | None,
    warns: list[str],
    created: list[str],
) -> list[ResolvedMount]:
    own = _own_mounts(host_config, volumes, warns, created)
    taken = {m.target for m in own}
    inherited = [
        m
        for m in parse_volumes_from(host_config.get("VolumesFrom") or [], volumes_from)
        if m.target not in taken
    ]
    mounts = own + inherited
    taken |= {m.target for m in inherited}
    for source in (container_volumes or {}, (image_config or {}).get("Volumes") or {}):
        for target in source:
            norm = check_target(str(target))
            if norm not in taken:
                mounts.append(ResolvedMount("volume", norm, copy_up=True, anonymous=True))
                taken.add(norm)
    ordered = sorted(mounts, key=lambda m: m.target.count("/"))
    return _acquire(ordered, container_id, volumes, created)


def _own_mounts(
    host_config: Mapping[str, Any], volumes: VolumeStore, warnings: list[str], created: list[str]
) -> list[ResolvedMount]:
    mounts = [parse_bind(str(b), warnings) for b in host_config.get("Binds") or []]
    mounts += [parse_mount(m, volumes, created) for m in host_config.get("Mounts") or []]
    mounts += parse_tmpfs(host_config.get("Tmpfs") or {})
    seen: set[str] = set()
    for m in mounts:
        if m.target in seen:
            raise InvalidArgument(f"Duplicate mount point: {m.target}")
        seen.add(m.target)
    return mounts


def _acquire(
    mounts: list[ResolvedMount], container_id: str, volumes: VolumeStore, created: list[str]
) -> list[ResolvedMount]:
    out: list[ResolvedMount] = []
    try:
        for m in mounts:
            if m.type == "volume":
                if not m.source:
                    name = volumes.create().name
                    created.append(name)
                    m = ResolvedMount(**{**m.__dict__, "source": name, "anonymous": True})
                elif not volumes.exists(m.source):
                    volumes.create(m.source)
                volumes.acquire(m.source, container_id)
            out.append(m)
    except BaseException:
        release_volumes(out, container_id, volumes)
        raise
    return out


def release_volumes(
    mounts: Sequence[ResolvedMount],
    container_id: str,
    volumes: VolumeStore,
    *,
    remove_anonymous: bool = False,
) -> list[str]:
    """The container is gone: stop counting it as a user of its volumes; with
    ``remove_anonymous`` (``rm -v``) its anonymous volumes are removed when nobody else uses
    them. Returns the names removed."""
    removed = []
    for m in mounts:
        if m.type != "volume" or not m.source:
            continue
        volumes.release(m.source, container_id)
        if (
            remove_anonymous
            and m.anonymous
            and volumes.exists(m.source)
            and not volumes.get(m.source).users
        ):
            volumes.remove(m.source)
            removed.append(m.source)
    return removed


def shm_size(host_config: Mapping[str, Any]) -> int:
    """``HostConfig.ShmSize`` checked (0 means Docker's 64 MB default)."""
    value = host_config.get("ShmSize") or 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(f"invalid HostConfig.ShmSize {value!r}: must be bytes >= 0")
    return value
