"""certs.d directories: what a host's directory holds, which root wins, errors, advice."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from pycompose.engine.images.certsd import (
    CertsDirError,
    CertsDirs,
    HostTLS,
    describe,
    read_host_dir,
    ssl_context,
    tls_advice,
)

HOST = "reg.example:5000"


def host_dir(root: Path, host: str, *names: str) -> Path:
    directory = root / host
    directory.mkdir(parents=True)
    for name in names:
        (directory / name).write_text(f"contents of {name}\n")
    return directory


def test_cas_and_client_pairs_are_found_in_name_order(tmp_path: Path) -> None:
    d = host_dir(
        tmp_path,
        HOST,
        "z.crt",
        "a.crt",
        "client.cert",
        "client.key",
        "b.cert",
        "b.key",
        "README",
        "ca.pem",
        "notes.txt",
    )
    (d / "sub.crt").mkdir()  # a directory, not a file: ignored
    tls = read_host_dir(d)
    assert tls.ca_files == (d / "a.crt", d / "z.crt")
    assert tls.client_certs == ((d / "b.cert", d / "b.key"), (d / "client.cert", d / "client.key"))
    assert tls.client_cert == (d / "b.cert", d / "b.key")


def test_empty_directory_has_nothing(tmp_path: Path) -> None:
    tls = read_host_dir(host_dir(tmp_path, HOST))
    assert (tls.ca_files, tls.client_certs, tls.client_cert) == ((), (), None)


def test_cert_without_key_names_both_files(tmp_path: Path) -> None:
    d = host_dir(tmp_path, HOST, "ca.crt", "client.cert")
    with pytest.raises(CertsDirError) as caught:
        read_host_dir(d)
    assert str(caught.value) == (
        f"missing key {d}/client.key for client certificate {d}/client.cert "
        "(CA certificates must use the extension .crt)"
    )


def test_key_without_cert_names_both_files(tmp_path: Path) -> None:
    d = host_dir(tmp_path, HOST, "ca.crt", "client.key")
    with pytest.raises(CertsDirError) as caught:
        read_host_dir(d)
    assert str(caught.value) == (
        f"missing client certificate {d}/client.cert for key {d}/client.key"
    )


def test_lookup_takes_the_first_root_with_the_host_whole(tmp_path: Path) -> None:
    ours, docker = tmp_path / "ours", tmp_path / "docker"
    host_dir(ours, "other.example", "ca.crt")
    host_dir(docker, HOST, "ca.crt", "client.cert", "client.key")
    certs = CertsDirs.of([ours, docker, ours])
    assert certs.roots == (ours, docker)
    found = certs.lookup(HOST)
    assert found is not None and found.directory == docker / HOST
    host_dir(ours, HOST, "mine.crt")
    assert certs.lookup(HOST) == HostTLS(ours / HOST, (ours / HOST / "mine.crt",), ())
    # The port is part of the name, as in docker.
    assert certs.lookup("reg.example") is None
    assert CertsDirs.of([tmp_path / "missing"]).lookup(HOST) is None


def test_hint_uses_the_first_root(tmp_path: Path) -> None:
    assert CertsDirs.of([tmp_path / "a", tmp_path / "b"]).hint(HOST) == (
        tmp_path / "a" / HOST / "ca.crt"
    )
    assert CertsDirs(()).hint(HOST) == Path("/etc/pycompose/certs.d") / HOST / "ca.crt"


@pytest.mark.parametrize("host", ["", ".", "..", "../etc", "a/b", "x\0y"])
def test_host_names_that_could_escape_the_root_are_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(CertsDirError, match="invalid registry host"):
        CertsDirs.of([tmp_path]).lookup(host)


def test_unusable_ca_file_is_named(tmp_path: Path) -> None:
    d = host_dir(tmp_path, HOST, "ca.crt")
    with pytest.raises(CertsDirError, match=f"cannot use CA certificate {d}/ca.crt: "):
        ssl_context(read_host_dir(d), verify=True)


def test_unusable_client_certificate_is_named(tmp_path: Path) -> None:
    d = host_dir(tmp_path, HOST, "client.cert", "client.key")
    with pytest.raises(
        CertsDirError,
        match=f"cannot use client certificate \\(with key {d}/client.key\\) {d}/client.cert: ",
    ):
        ssl_context(read_host_dir(d), verify=False)


def test_unverified_context_checks_nothing(tmp_path: Path) -> None:
    ctx = ssl_context(read_host_dir(host_dir(tmp_path, HOST)), verify=False)
    assert (ctx.verify_mode, ctx.check_hostname) == (ssl.CERT_NONE, False)
    strict = ssl_context(read_host_dir(tmp_path / HOST), verify=True)
    assert (strict.verify_mode, strict.check_hostname) == (ssl.CERT_REQUIRED, True)


def _wrapped(inner: BaseException) -> Exception:
    """An error whose cause is ``inner``, as httpx wraps ssl errors."""
    try:
        try:
            raise inner
        except BaseException as err:
            raise RuntimeError("") from err
    except RuntimeError as outer:
        return outer


def test_advice_for_an_unverified_server_certificate(tmp_path: Path) -> None:
    err = _wrapped(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    certs = CertsDirs.of([tmp_path / "ours"])
    assert tls_advice(err, HOST, certs) == (
        f"The TLS certificate of {HOST} did not verify: if a private CA signed it, put that "
        f"CA certificate in {tmp_path}/ours/{HOST}/ca.crt"
    )
    assert describe(err) == "certificate verify failed"  # the outer error says nothing


def test_advice_for_a_missing_or_refused_client_certificate(tmp_path: Path) -> None:
    alert = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] alert")
    alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    certs = CertsDirs.of([tmp_path])
    assert tls_advice(_wrapped(alert), HOST, certs) == (
        f"{HOST} requires a client certificate: put it and its key in {tmp_path}/{HOST}/ as "
        "client.cert and client.key"
    )
    host_dir(tmp_path, HOST, "c.cert", "c.key")
    assert tls_advice(_wrapped(alert), HOST, certs) == (
        f"{HOST} did not accept the client certificate {tmp_path}/{HOST}/c.cert: it must be "
        "signed by a CA the registry trusts"
    )
    reset = _wrapped(ConnectionResetError(104, "Connection reset by peer"))
    assert "may not accept the client certificate" in tls_advice(reset, HOST, certs)


def test_no_advice_for_other_failures(tmp_path: Path) -> None:
    certs = CertsDirs.of([tmp_path])
    assert tls_advice(_wrapped(ConnectionRefusedError(111, "refused")), HOST, certs) == ""
    # A reset without a client certificate configured says nothing about certificates.
    assert tls_advice(_wrapped(ConnectionResetError(104, "reset")), HOST, certs) == ""
