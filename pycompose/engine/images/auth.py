"""Registry credentials: ours (``pycompose login``) and docker's ``~/.docker/config.json``.

Our file is ``<config dir>/auth.json`` (mode 0600), in docker's ``{"auths": {host: {"auth":
base64("user:password")}}}`` shape. The config dir is ``$PYCOMPOSE_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/pycompose``, else ``~/.config/pycompose``. Docker's file is read, never
written: ``auths`` entries, ``credHelpers`` per host and ``credsStore``, the last two through
the ``docker-credential-<name>`` programs when they are installed.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.images.reference import DEFAULT_DOMAIN
from pycompose.engine.images.registry import (
    Credentials,
    RegistryClient,
    RegistryConfig,
    RegistryError,
)

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

HelperRunner = Callable[[str, str], "Mapping[str, Any] | None"]
"""(helper name, server URL) -> the helper's JSON answer, or None when it has no entry."""


def default_config_dir() -> pathlib.Path:
    """Where pycompose keeps per-user configuration."""
    if env := os.environ.get("PYCOMPOSE_CONFIG_DIR"):
        return pathlib.Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return pathlib.Path(base) / "pycompose"


def default_docker_config() -> pathlib.Path:
    """Docker's client configuration file (``$DOCKER_CONFIG/config.json``)."""
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return pathlib.Path(base) / "config.json"


def registry_key(server: str) -> str:
    """Normalise a server as written in config files: ``https://host:5000/v2/`` -> ``host:5000``.

    Every spelling of Docker Hub becomes ``docker.io``.
    """
    host = server.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].lower()
    if not host:
        raise InvalidArgument(f"invalid registry name {server!r}")
    return DEFAULT_DOMAIN if host in _HUB_ALIASES else host


def _decode_auth(value: str, where: str) -> Credentials:
    try:
        raw = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as err:
        raise InvalidArgument(f"{where}: the auth entry is not valid base64") from err
    user, sep, password = raw.partition(":")
    if not sep or not user:
        raise InvalidArgument(f"{where}: the auth entry is not 'user:password'")
    return Credentials(user, password)


def run_credential_helper(name: str, server: str) -> Mapping[str, Any] | None:
    """Ask ``docker-credential-<name> get`` for ``server``'s credentials."""
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        raise RegistryError(f"docker's config names the credential helper {name!r} but "
                            f"docker-credential-{name} is not installed")
    try:
        proc = subprocess.run([program, "get"], input=server.encode(), capture_output=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RegistryError(f"credential helper docker-credential-{name} failed: {err}") from err
    if proc.returncode != 0:
        if b"credentials not found" in proc.stdout + proc.stderr:
            return None
        message = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        raise RegistryError(f"credential helper docker-credential-{name} failed: {message}")
    try:
        answer = json.loads(proc.stdout)
    except ValueError as err:
        raise RegistryError(f"credential helper docker-credential-{name} answered invalid "
                            "JSON") from err
    if not isinstance(answer, dict):
        raise RegistryError(f"credential helper docker-credential-{name} answered {answer!r}")
    return answer


class AuthStore:
    """Looks up credentials for registries and keeps our own ``auth.json``."""

    def __init__(self, config_dir: pathlib.Path | None = None,
                 docker_config: pathlib.Path | None = None,
                 helper: HelperRunner = run_credential_helper) -> None:
        self.config_dir = config_dir if config_dir is not None else default_config_dir()
        self.docker_config = docker_config if docker_config is not None \
            else default_docker_config()
        self.helper = helper

    @property
    def path(self) -> pathlib.Path:
        """Our credentials file."""
        return self.config_dir / "auth.json"

    def _read(self, path: pathlib.Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise InvalidArgument(f"cannot read {path}: {err}") from err
        if not isinstance(data, dict):
            raise InvalidArgument(f"{path}: expected a JSON object")
        return data

    @staticmethod
    def _auths(data: Mapping[str, Any], path: pathlib.Path) -> dict[str, Mapping[str, Any]]:
        auths = data.get("auths", {})
        if not isinstance(auths, dict):
            raise InvalidArgument(f"{path}: 'auths' must be an object")
        return {registry_key(k): v for k, v in auths.items() if isinstance(v, dict)}

    def lookup(self, registry: str) -> Credentials | None:
        """Credentials for ``registry`` (any spelling), from our file, then docker's."""
        key = registry_key(registry)
        entry = self._auths(self._read(self.path), self.path).get(key)
        if entry and "auth" in entry:
            return _decode_auth(entry["auth"], f"{self.path} auths.{key}")
        return self._lookup_docker(key)

    def _lookup_docker(self, key: str) -> Credentials | None:
        path = self.docker_config
        data = self._read(path)
        helpers = data.get("credHelpers") or {}
        if not isinstance(helpers, dict):
            raise InvalidArgument(f"{path}: 'credHelpers' must be an object")
        helper = next((v for k, v in helpers.items() if registry_key(k) == key), None)
        helper = helper or data.get("credsStore")
        if isinstance(helper, str) and helper:
            server = DOCKER_HUB_KEY if key == DEFAULT_DOMAIN else key
            answer = self.helper(helper, server)
            if answer is not None:
                return self._from_helper(answer, helper, key)
        entry = self._auths(data, path).get(key)
        if not entry:
            return None
        if entry.get("identitytoken"):
            raise InvalidArgument(f"{path}: the credentials for {key} are an identity token, "
                                  "which pycompose does not support; use `pycompose login`")
        if "auth" in entry:
            return _decode_auth(entry["auth"], f"{path} auths.{key}")
        if "username" in entry and "password" in entry:
            return Credentials(str(entry["username"]), str(entry["password"]))
        return None

    @staticmethod
    def _from_helper(answer: Mapping[str, Any], helper: str, key: str) -> Credentials:
        user, secret = answer.get("Username"), answer.get("Secret")
        if not isinstance(user, str) or not isinstance(secret, str):
            raise RegistryError(f"credential helper {helper} gave no Username/Secret for {key}")
        if user == "<token>":
            raise InvalidArgument(f"credential helper {helper} holds an identity token for "
                                  f"{key}, which pycompose does not support")
        return Credentials(user, secret)

    def save(self, registry: str, credentials: Credentials) -> None:
        """Store credentials in our file (created 0600, replaced atomically)."""
        data = self._read(self.path)
        auths = dict(data.get("auths") or {})
        raw = f"{credentials.username}:{credentials.password}".encode()
        auths[registry_key(registry)] = {"auth": base64.b64encode(raw).decode()}
        data["auths"] = auths
        self._write(data)

    def remove(self, registry: str) -> bool:
        """Forget ``registry`` in our file; whether there was an entry."""
        data = self._read(self.path)
        auths = dict(data.get("auths") or {})
        key = registry_key(registry)
        found = [k for k in auths if registry_key(k) == key]
        for k in found:
            del auths[k]
        if found:
            data["auths"] = auths
            self._write(data)
        return bool(found)

    def _write(self, data: Mapping[str, Any]) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".auth-", dir=self.config_dir)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            pathlib.Path(tmp).unlink(missing_ok=True)
            raise


async def login(registry: str, username: str, password: str, *, store: AuthStore,
                registry_config: RegistryConfig | None = None) -> None:
    """Check the credentials against ``registry`` and, if accepted, save them."""
    if not username:
        raise InvalidArgument("login needs a user name")
    creds = Credentials(username, password)
    domain = registry_key(registry)
    async with RegistryClient(registry_config) as client:
        await client.check_login(domain, creds)
    store.save(domain, creds)


def logout(registry: str, *, store: AuthStore) -> bool:
    """Remove saved credentials for ``registry``; whether any were saved."""
    return store.remove(registry)
