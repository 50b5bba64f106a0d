"""How containers really run: OCI bundles, runc/crun, and a monitor process per container.

- ``spec``: OCI ``config.json`` from a Docker-style create request (``build_spec``).
- ``seccomp``: our default seccomp policy and Docker-format profiles.
- ``users``: user/group names resolved inside the image's rootfs, never outside it.
- ``etcfiles``: the engine-written /etc/hosts, /etc/resolv.conf and /etc/hostname.
- ``cgroups``: cgroup v1/hybrid/v2 detection and resource limits.
- ``oci``: the runtime CLI (runc or crun) behind a small interface, and the start-up probe.
- ``monitor``: the per-container monitor that outlives the daemon, logs, exit files, exec.

Submodules are imported explicitly by their users; this package imports nothing heavy.
"""

from __future__ import annotations
