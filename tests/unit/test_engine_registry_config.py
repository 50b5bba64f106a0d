"""Registry mirrors, insecure registries and the certs.d root: flags, environment,
daemon.json, /info, images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pycompose.cli import main as cli_main
from pycompose.engine import daemon
from pycompose.engine.api.system import registry_info
from pycompose.engine.config import (
    DEFAULT_CERTS_DIR,
    DOCKER_CERTS_DIR,
    LOOPBACK_INSECURE,
    EngineConfig,
    is_insecure,
    parse_insecure_registries,
    parse_mirrors,
    read_daemon_file,
)
from pycompose.engine.errors import InvalidArgument
from pycompose.engine.images.api import ImagesService


def write_daemon_json(directory: Path, data: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "daemon.json"
    path.write_text(json.dumps(data))
    return path


def test_defaults_have_no_mirrors_and_only_loopback_insecure() -> None:
    config = EngineConfig.load(environ={})
    assert (config.registry_mirrors, config.insecure_registries) == ((), ())
    assert config.registry_insecure_all == ("127.0.0.0/8", "::1/128", "localhost")
    assert config.config_file is None


def test_flags_then_environment_then_file(tmp_path: Path) -> None:
    write_daemon_json(tmp_path, {"registry-mirrors": ["https://file.example"],
                                 "insecure-registries": ["file.example:5000"]})
    env = {"PYCOMPOSE_CONFIG_DIR": str(tmp_path)}
    from_file = EngineConfig.load(environ=env, read_config_file=True)
    assert from_file.registry_mirrors == ("https://file.example/",)
    assert from_file.insecure_registries == ("file.example:5000",)

    env |= {"PYCOMPOSE_REGISTRY_MIRRORS": "https://env-a.example, https://env-b.example/",
            "PYCOMPOSE_INSECURE_REGISTRIES": "10.1.0.0/16,env.example"}
    from_env = EngineConfig.load(environ=env, read_config_file=True)
    assert from_env.registry_mirrors == ("https://env-a.example/", "https://env-b.example/")
    assert from_env.insecure_registries == ("10.1.0.0/16", "env.example")

    from_flags = EngineConfig.load(environ=env, read_config_file=True,
                                   registry_mirrors=["http://flag.example:5000"],
                                   insecure_registries=["flag.example:5000"])
    assert from_flags.registry_mirrors == ("http://flag.example:5000/",)
    assert from_flags.insecure_registries == ("flag.example:5000",)


def test_each_setting_falls_back_on_its_own(tmp_path: Path) -> None:
    write_daemon_json(tmp_path, {"registry-mirrors": ["https://file.example"],
                                 "insecure-registries": ["file.example"]})
    config = EngineConfig.load(environ={"PYCOMPOSE_CONFIG_DIR": str(tmp_path)},
                               read_config_file=True, insecure_registries=["flag.example"])
    assert config.registry_mirrors == ("https://file.example/",)
    assert config.insecure_registries == ("flag.example",)


def test_default_file_read_only_when_asked(tmp_path: Path) -> None:
    write_daemon_json(tmp_path / "xdg" / "pycompose", {"registry-mirrors": ["https://m.example"]})
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert EngineConfig.load(environ=env).registry_mirrors == ()
    assert EngineConfig.load(environ=env, read_config_file=True).registry_mirrors == (
        "https://m.example/",
    )
    # No file in the config dir is fine: nothing configured.
    empty = {"PYCOMPOSE_CONFIG_DIR": str(tmp_path / "none")}
    assert EngineConfig.load(environ=empty, read_config_file=True).registry_mirrors == ()


def test_explicit_config_file_must_exist_and_is_passed_on(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"cannot read daemon config file .*missing\.json"):
        EngineConfig.load(environ={}, config_file=tmp_path / "missing.json")
    path = write_daemon_json(tmp_path, {"insecure-registries": ["reg.example:443"]})
    config = EngineConfig.load(environ={}, config_file=path)
    assert config.config_file == path
    assert config.insecure_registries == ("reg.example:443",)
    assert config.registry_insecure_all[0] == "reg.example:443"


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not valid JSON"),
    ("[]", "must hold a JSON object"),
    ('{"debug": true, "registry-mirrors": []}', "unsupported key.*'debug'"),
    ('{"registry-mirrors": "https://m.example"}', "registry-mirrors must be a list of strings"),
    ('{"insecure-registries": [5000]}', "insecure-registries must be a list of strings"),
])
def test_bad_daemon_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(content)
    with pytest.raises(InvalidArgument, match=message):
        read_daemon_file(path)
    with pytest.raises(InvalidArgument, match=message):
        EngineConfig.load(environ={}, config_file=path)


def test_empty_daemon_file_is_an_empty_config(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text("  \n")
    assert read_daemon_file(path) == {}


@pytest.mark.parametrize(("entries", "expected"), [
    (["reg.example"], ("reg.example",)),
    (["reg.example:5000", "reg.example:5000"], ("reg.example:5000",)),
    (["http://reg.example:5000", "HTTPS://other.example"],
     ("reg.example:5000", "other.example")),
    (["10.1.2.3/16", "fd00::1/64"], ("10.1.0.0/16", "fd00::/64")),
    (["[fd00::1]:5000", "192.0.2.7"], ("[fd00::1]:5000", "192.0.2.7")),
])
def test_insecure_registries_normalised(entries: list[str], expected: tuple[str, ...]) -> None:
    assert parse_insecure_registries(entries, "test") == expected


@pytest.mark.parametrize(("entry", "message"), [
    ("ftp://reg.example", "without a scheme"),
    ("10.0.0.0/33", "not a valid CIDR"),
    ("reg.example/path", "not a valid CIDR"),
    ("reg.example:99999", r"expected host\[:port\]"),
    ("reg.example:", r"expected host\[:port\]"),
    ("bad_host", r"expected host\[:port\]"),
    ("", r"expected host\[:port\]"),
    ("[zz::1]:80", r"expected host\[:port\]"),
])
def test_bad_insecure_registry(entry: str, message: str) -> None:
    with pytest.raises(InvalidArgument,
                       match=f"invalid insecure registry '.*' \\(--x\\): .*{message}"):
        parse_insecure_registries([entry], "--x")


def test_mirrors_normalised() -> None:
    got = parse_mirrors(["https://Mirror.Example", "https://mirror.example/",
                         "http://127.0.0.1:5000", "http://reg.example:5000"], "test",
                        ["reg.example"])
    assert got == ("https://mirror.example/", "http://127.0.0.1:5000/",
                   "http://reg.example:5000/")


@pytest.mark.parametrize(("url", "message"), [
    ("mirror.example", "must start with http:// or https://"),
    ("ftp://mirror.example", "must start with http:// or https://"),
    ("https://", "has no valid host"),
    ("https://user:pw@mirror.example", "user name or password"),
    ("https://mirror.example/?x=1", "query or fragment"),
    ("https://mirror.example/#top", "query or fragment"),
    ("https://mirror.example/?", "query or fragment"),
    ("https://mirror.example/v2/", "a path is not supported"),
    ("https://mirror.example:http", "Port could not be cast"),
    ("http://mirror.example", "plain http needs mirror.example to be an insecure registry"),
])
def test_bad_mirror(url: str, message: str) -> None:
    with pytest.raises(InvalidArgument,
                       match=f"invalid registry mirror '.*' \\(src\\): .*{message}"):
        parse_mirrors([url], "src", [])


def test_bad_value_names_its_source(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"\(PYCOMPOSE_REGISTRY_MIRRORS\)"):
        EngineConfig.load(environ={"PYCOMPOSE_REGISTRY_MIRRORS": "ftp://m.example"})
    with pytest.raises(InvalidArgument, match=r"\(--insecure-registry\)"):
        EngineConfig.load(environ={}, insecure_registries=["a/b"])
    path = write_daemon_json(tmp_path, {"registry-mirrors": ["https://m.example/x"]})
    with pytest.raises(InvalidArgument, match=f"\\({path} registry-mirrors\\)"):
        EngineConfig.load(environ={}, config_file=path)


@pytest.mark.parametrize(("host", "entries", "expected"), [
    ("127.0.0.2:5000", [], True),
    ("[::1]:5000", [], True),
    ("localhost:5000", [], True),
    ("reg.example:5000", [], False),
    ("reg.example:5000", ["reg.example"], True),
    ("reg.example:5000", ["reg.example:5000"], True),
    ("reg.example:5001", ["reg.example:5000"], False),
    ("10.1.2.3:443", ["10.1.0.0/16"], True),
    ("10.2.2.3", ["10.1.0.0/16"], False),
    ("[::1]", [], True),  # no port: the registry's own copy of this check got it wrong
])
def test_is_insecure(host: str, entries: list[str], expected: bool) -> None:
    assert is_insecure(host, [*entries, *LOOPBACK_INSECURE]) is expected
    if not entries:
        assert is_insecure(host, entries) is False  # loopback only when listed


def test_serve_args_reproduce_the_registry_settings(tmp_path: Path) -> None:
    path = write_daemon_json(tmp_path, {})
    config = EngineConfig.load(environ={}, config_file=path,
                               registry_mirrors=["https://a.example", "https://b.example"],
                               insecure_registries=["a.example", "10.0.0.0/8"])
    args = config.serve_args()
    assert args[args.index("--config-file") + 1] == str(path)
    assert [args[i + 1] for i, a in enumerate(args) if a == "--registry-mirror"] == [
        "https://a.example/", "https://b.example/"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--insecure-registry"] == [
        "a.example", "10.0.0.0/8"]
    assert "--registry-mirror" not in EngineConfig.load(environ={}).serve_args()


def test_info_registry_config_in_docker_shape() -> None:
    config = EngineConfig.load(environ={}, registry_mirrors=["https://m.example:5000"],
                               insecure_registries=["reg.example:5000", "10.1.0.0/16"])
    assert registry_info(config) == {
        "IndexConfigs": {
            "reg.example:5000": {"Name": "reg.example:5000", "Mirrors": [], "Secure": False,
                                 "Official": False},
            "docker.io": {"Name": "docker.io", "Mirrors": ["https://m.example:5000/"],
                          "Secure": True, "Official": True},
        },
        "InsecureRegistryCIDRs": ["10.1.0.0/16", "::1/128", "127.0.0.0/8"],
        "Mirrors": ["https://m.example:5000/"],
    }
    assert registry_info(EngineConfig())["InsecureRegistryCIDRs"] == ["::1/128", "127.0.0.0/8"]


class _Ctx:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config


class _NoAuth:
    def lookup(self, host: str) -> None:
        return None


def test_images_registry_config_uses_the_daemon_settings() -> None:
    config = EngineConfig.load(environ={}, registry_mirrors=["https://m.example"],
                               insecure_registries=["reg.example"])
    service = ImagesService(_Ctx(config), None, None, None, _NoAuth())  # type: ignore[arg-type]
    reg = service.registry_config(None)
    assert reg.mirrors == ("https://m.example/",)
    assert reg.insecure_registries == ("reg.example", "127.0.0.0/8", "::1/128", "localhost")
    assert reg.credentials is not None and reg.credentials("reg.example") is None


def _serve(argv: list[str], monkeypatch: pytest.MonkeyPatch,
           tmp_path: Path) -> tuple[int, list[EngineConfig]]:
    """Run ``engine serve`` with the daemon replaced by a recorder."""
    seen: list[EngineConfig] = []

    def fake_serve(config: EngineConfig, components: Any) -> None:
        seen.append(config)

    monkeypatch.setattr(daemon, "serve", fake_serve)
    monkeypatch.setattr("logging.basicConfig", lambda **kwargs: None)
    monkeypatch.setenv("PYCOMPOSE_CONFIG_DIR", str(tmp_path / "config"))
    for name in ("PYCOMPOSE_REGISTRY_MIRRORS", "PYCOMPOSE_INSECURE_REGISTRIES",
                 "PYCOMPOSE_CERTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    base = ["engine", "serve", "--root", str(tmp_path / "root"),
            "--runtime-dir", str(tmp_path / "run")]
    return cli_main.main(base + argv), seen


def test_cli_serve_flags_override_the_daemon_file(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    write_daemon_json(tmp_path / "config", {"registry-mirrors": ["https://file.example"],
                                            "insecure-registries": ["file.example"]})
    status, seen = _serve(["--registry-mirror", "https://a.example",
                           "--registry-mirror", "http://b.example:5000",
                           "--insecure-registry", "b.example:5000"], monkeypatch, tmp_path)
    assert status == 0
    assert seen[0].registry_mirrors == ("https://a.example/", "http://b.example:5000/")
    assert seen[0].insecure_registries == ("b.example:5000",)
    status, seen = _serve([], monkeypatch, tmp_path)
    assert (status, seen[0].registry_mirrors) == (0, ("https://file.example/",))


def test_cli_serve_bad_value_is_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    status, seen = _serve(["--insecure-registry", "ftp://x"], monkeypatch, tmp_path)
    err = capsys.readouterr().err
    assert status != 0 and seen == []
    assert err.strip() == ("invalid insecure registry 'ftp://x' (--insecure-registry): "
                           "only a host[:port] or a CIDR, without a scheme")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    status, seen = _serve(["--config-file", str(bad)], monkeypatch, tmp_path)
    assert status != 0 and seen == []
    assert capsys.readouterr().err.count("\n") == 1


def test_other_engine_commands_ignore_the_daemon_file(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "daemon.json").write_text("{broken")
    monkeypatch.setenv("PYCOMPOSE_CONFIG_DIR", str(tmp_path / "config"))
    status = cli_main.main(["engine", "stop", "--root", str(tmp_path / "root"),
                            "--runtime-dir", str(tmp_path / "run")])
    assert (status, capsys.readouterr().out) == (0, f"no engine running for {tmp_path}/run\n")


# -- certs.d root --------------------------------------------------------------------------

def test_certs_dir_from_flag_then_environment_then_file(tmp_path: Path) -> None:
    path = write_daemon_json(tmp_path, {"certs-dir": "/srv/file-certs"})
    assert EngineConfig.load(environ={}).certs_dir == DEFAULT_CERTS_DIR
    assert EngineConfig.load(environ={}, config_file=path).certs_dir == Path("/srv/file-certs")
    env = {"PYCOMPOSE_CERTS_DIR": "/srv/env-certs/"}
    assert EngineConfig.load(environ=env, config_file=path).certs_dir == Path("/srv/env-certs")
    flagged = EngineConfig.load(environ=env, config_file=path, certs_dir="/srv/flag-certs")
    assert flagged.certs_dir == Path("/srv/flag-certs")
    assert flagged.registry_certs_dirs == (Path("/srv/flag-certs"), DOCKER_CERTS_DIR)


@pytest.mark.parametrize(("kwargs", "source"), [
    ({"certs_dir": "certs"}, "--certs-dir"),
    ({"environ": {"PYCOMPOSE_CERTS_DIR": "rel/certs"}}, "PYCOMPOSE_CERTS_DIR"),
])
def test_relative_certs_dir_is_refused_naming_its_source(kwargs: dict[str, Any],
                                                         source: str) -> None:
    kwargs.setdefault("environ", {})
    with pytest.raises(InvalidArgument, match=f"invalid certs dir .*\\({source}\\): expected "
                       "an absolute path"):
        EngineConfig.load(**kwargs)


@pytest.mark.parametrize("value", [["/a"], 3, ""])
def test_daemon_file_certs_dir_must_be_a_path(tmp_path: Path, value: object) -> None:
    path = write_daemon_json(tmp_path, {"certs-dir": value})
    with pytest.raises(InvalidArgument, match="certs-dir must be a path"):
        read_daemon_file(path)


def test_daemon_file_relative_certs_dir_names_the_file(tmp_path: Path) -> None:
    path = write_daemon_json(tmp_path, {"certs-dir": "certs.d"})
    with pytest.raises(InvalidArgument, match=f"\\({path} certs-dir\\)"):
        EngineConfig.load(environ={}, config_file=path)


def test_serve_args_pass_a_certs_dir_other_than_the_default() -> None:
    assert "--certs-dir" not in EngineConfig.load(environ={}).serve_args()
    args = EngineConfig.load(environ={}, certs_dir="/srv/c").serve_args()
    assert args[args.index("--certs-dir") + 1] == "/srv/c"


def test_images_registry_config_searches_our_certs_dir_then_dockers() -> None:
    config = EngineConfig.load(environ={}, certs_dir="/srv/c")
    service = ImagesService(_Ctx(config), None, None, None, _NoAuth())  # type: ignore[arg-type]
    assert service.registry_config(None).certs_dirs == (Path("/srv/c"), DOCKER_CERTS_DIR)


def test_cli_serve_certs_dir_flag_and_daemon_file(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    write_daemon_json(tmp_path / "config", {"certs-dir": "/srv/from-file"})
    status, seen = _serve([], monkeypatch, tmp_path)
    assert (status, seen[0].certs_dir) == (0, Path("/srv/from-file"))
    status, seen = _serve(["--certs-dir", "/srv/from-flag"], monkeypatch, tmp_path)
    assert (status, seen[0].certs_dir) == (0, Path("/srv/from-flag"))
