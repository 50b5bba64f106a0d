"""certs.d against real docker-registry instances: CAs, client certificates, token services.

Every registry here is on loopback, which is insecure by default; the configs set
``insecure_registries=()`` so that TLS really verifies, and only the certs.d roots made in
each test's temp dir are searched.
"""

from __future__ import annotations

import pathlib
import shutil
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from pycompose.engine.images.certsd import CertsDirError
from pycompose.engine.images.content import ContentStore
from pycompose.engine.images.pull import pull
from pycompose.engine.images.registry import RegistryConfig, RegistryError
from pycompose.engine.images.store import ImageRecord, ImageStore
from pycompose.storage.layers import LayerStore
from tests.fixtures import pki
from tests.fixtures import registry as fx

tls_registry = fx.tls_registry


@pytest.fixture
def mutual_registry() -> Iterator[fx.RegistryServer]:
    """https that demands a client certificate from its own CA (``client_cert`` is one)."""
    with fx.run_registry(tls=True, mutual=True) as server:
        yield server


@pytest.fixture
def layout(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "layout"
    path.mkdir()
    fx.build_oci_layout(path, fx.busybox_layers())
    return path


def pull_with(tmp_path: pathlib.Path, name: str, config: RegistryConfig) -> ImageRecord:
    """Pull ``name`` into fresh stores under ``tmp_path``."""
    root = tmp_path / "state"
    shutil.rmtree(root, ignore_errors=True)
    content = ContentStore(root / "content")
    images = ImageStore(root / "images", content, LayerStore(root / "layers"))
    events: list[dict[str, Any]] = []

    async def main() -> ImageRecord:
        return await pull(
            name, content=content, images=images, registry_config=config, progress=events.append
        )

    return anyio.run(main)


def certs_root(
    tmp_path: pathlib.Path, name: str, files: dict[str, dict[str, pathlib.Path]]
) -> pathlib.Path:
    """A certs.d root ``tmp_path/name`` with ``{host: {file name: source}}`` copied in."""
    root = tmp_path / name
    root.mkdir()
    for host, entries in files.items():
        (root / host).mkdir()
        for file_name, source in entries.items():
            shutil.copyfile(source, root / host / file_name)
    return root


def config(server: fx.RegistryServer, *roots: pathlib.Path) -> RegistryConfig:
    return server.client_config(certs_dirs=roots, insecure_registries=())


def test_pull_verifies_with_the_ca_from_certs_dir_only(
    tls_registry: fx.RegistryServer, layout: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    fx.skopeo_copy(layout, tls_registry, "app")
    host, name = tls_registry.host, f"{tls_registry.host}/app"
    assert tls_registry.ca_file is not None
    root = certs_root(tmp_path, "certs.d", {host: {"ca.crt": pathlib.Path(tls_registry.ca_file)}})

    assert pull_with(tmp_path, name, config(tls_registry, root)).repo_tags == (f"{name}:latest",)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RegistryError) as caught:
        pull_with(tmp_path, name, config(tls_registry, empty))
    message = str(caught.value)
    assert f"cannot reach registry https://{host}" in message
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert (
        f"The TLS certificate of {host} did not verify: if a private CA signed it, put "
        f"that CA certificate in {empty}/{host}/ca.crt"
    ) in message


def test_first_root_with_the_host_wins(
    tls_registry: fx.RegistryServer, layout: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    fx.skopeo_copy(layout, tls_registry, "app")
    host, name = tls_registry.host, f"{tls_registry.host}/app"
    assert tls_registry.ca_file is not None
    right = pathlib.Path(tls_registry.ca_file)
    wrong = pki.make_ca(tmp_path / "other", "unrelated").cert
    docker = certs_root(tmp_path, "docker", {host: {"ca.crt": right}})
    ours_other_host = certs_root(tmp_path, "ours1", {"127.0.0.1:1": {"ca.crt": wrong}})
    ours_wrong = certs_root(tmp_path, "ours2", {host: {"ca.crt": wrong}})

    # Ours has nothing for this host: docker's directory is used.
    pull_with(tmp_path, name, config(tls_registry, ours_other_host, docker))
    # Ours has a directory for it: that wins whole, and its CA does not sign the registry.
    with pytest.raises(RegistryError, match=f"put that CA certificate in {ours_wrong}/{host}/"):
        pull_with(tmp_path, name, config(tls_registry, ours_wrong, docker))


def test_client_certificate_from_certs_dir(
    mutual_registry: fx.RegistryServer, layout: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    fx.skopeo_copy(layout, mutual_registry, "app")
    host, name = mutual_registry.host, f"{mutual_registry.host}/app"
    assert mutual_registry.ca_file is not None and mutual_registry.client_cert is not None
    ca = pathlib.Path(mutual_registry.ca_file)
    client = mutual_registry.client_cert
    full = certs_root(
        tmp_path,
        "full",
        {host: {"ca.crt": ca, "client.cert": client.cert, "client.key": client.key}},
    )
    assert pull_with(tmp_path, name, config(mutual_registry, full)).repo_tags == (f"{name}:latest",)

    ca_only = certs_root(tmp_path, "ca-only", {host: {"ca.crt": ca}})
    with pytest.raises(RegistryError) as caught:
        pull_with(tmp_path, name, config(mutual_registry, ca_only))
    assert (
        f"{host} requires a client certificate: put it and its key in {ca_only}/{host}/ "
        "as client.cert and client.key"
    ) in str(caught.value)

    stranger_ca = pki.make_ca(tmp_path / "stranger", "stranger")
    stranger = pki.issue(stranger_ca, tmp_path / "stranger", "stranger-client")
    untrusted = certs_root(
        tmp_path,
        "untrusted",
        {host: {"ca.crt": ca, "client.cert": stranger.cert, "client.key": stranger.key}},
    )
    # The server's alert often gets lost in its connection reset: either wording names
    # the certificate.
    with pytest.raises(
        RegistryError,
        match=f"{host} (did not|reset the connection: it may not) accept the "
        f"client certificate {untrusted}/{host}/client.cert",
    ):
        pull_with(tmp_path, name, config(mutual_registry, untrusted))


@pytest.mark.parametrize("present", ["client.cert", "client.key"])
def test_lone_client_cert_or_key_is_an_error_naming_it(
    mutual_registry: fx.RegistryServer, tmp_path: pathlib.Path, present: str
) -> None:
    host = mutual_registry.host
    assert mutual_registry.ca_file is not None and mutual_registry.client_cert is not None
    client = mutual_registry.client_cert
    source = client.cert if present == "client.cert" else client.key
    root = certs_root(
        tmp_path,
        "certs.d",
        {host: {"ca.crt": pathlib.Path(mutual_registry.ca_file), present: source}},
    )
    missing = "client.key" if present == "client.cert" else "client.cert"
    expected = (
        f"missing key {root}/{host}/client.key for client certificate {root}/{host}/client.cert"
        if present == "client.cert"
        else f"missing client certificate {root}/{host}/client.cert for key "
        f"{root}/{host}/client.key"
    )
    with pytest.raises(CertsDirError) as caught:
        pull_with(tmp_path, f"{host}/app", config(mutual_registry, root))
    assert expected in str(caught.value)
    assert missing in str(caught.value)


def test_token_service_host_has_its_own_certs_dir(
    layout: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    tokens = fx.TokenServer(tls=True)
    try:
        with fx.run_registry(tls=True, token=tokens) as server:
            fx.skopeo_copy(layout, server, "app")
            assert server.ca_file is not None and tokens.tls_cert is not None
            name = f"{server.host}/app"
            both = certs_root(
                tmp_path,
                "both",
                {
                    server.host: {"ca.crt": pathlib.Path(server.ca_file)},
                    tokens.host: {"ca.crt": tokens.tls_cert},
                },
            )
            # Anonymous pull: the token service grants it over its own TLS.
            pull_with(tmp_path, name, RegistryConfig(certs_dirs=(both,), insecure_registries=()))
            assert any("repository:app:pull" in q.get("scope", []) for q in tokens.requests)

            # No directory of its own: the token host uses its registry's, as dockerd does.
            shared = certs_root(
                tmp_path,
                "shared",
                {
                    server.host: {
                        "registry.crt": pathlib.Path(server.ca_file),
                        "token.crt": tokens.tls_cert,
                    }
                },
            )
            pull_with(tmp_path, name, RegistryConfig(certs_dirs=(shared,), insecure_registries=()))

            registry_only = certs_root(
                tmp_path, "registry-only", {server.host: {"ca.crt": pathlib.Path(server.ca_file)}}
            )
            with pytest.raises(RegistryError) as caught:
                pull_with(
                    tmp_path,
                    name,
                    RegistryConfig(certs_dirs=(registry_only,), insecure_registries=()),
                )
            message = str(caught.value)
            assert f"cannot reach token service {tokens.realm}" in message
            assert f"put that CA certificate in {registry_only}/{tokens.host}/ca.crt" in message
    finally:
        tokens.close()
