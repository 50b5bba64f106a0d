"""profiles: expectations checked against docker compose v2.40.3 (`--profile`, `config
--services`, `config --profiles`, `config SERVICE`)."""

from __future__ import annotations

from typing import Any

import pytest

from pycompose.compose.errors import ComposeError
from pycompose.compose.profiles import apply_profiles, dependencies, is_enabled, list_profiles


def project(**services: dict[str, Any]) -> dict[str, Any]:
    return {"name": "p", "services": services, "networks": {"n": {}}}


SAMPLE = project(
    web={"image": "x", "depends_on": ["db"]},
    db={"image": "y", "profiles": ["debug"]},
    tool={"image": "z", "profiles": ["tools", "debug"]},
    plain={"image": "p"},
)


def names(data: dict[str, Any]) -> list[str]:
    return sorted(data["services"])


def test_services_without_profiles_and_active_ones() -> None:
    assert names(apply_profiles(SAMPLE, {"debug"})) == ["db", "plain", "tool", "web"]
    only_plain = project(plain={"image": "p"}, tool={"image": "z", "profiles": ["tools"]})
    assert names(apply_profiles(only_plain, set())) == ["plain"]
    assert names(apply_profiles(only_plain, {"tools"})) == ["plain", "tool"]


def test_star_activates_every_profile() -> None:
    assert names(apply_profiles(SAMPLE, {"*"})) == ["db", "plain", "tool", "web"]


def test_other_sections_are_kept() -> None:
    out = apply_profiles(SAMPLE, {"debug"})
    assert out["name"] == "p"
    assert out["networks"] == {"n": {}}


def test_enabled_service_depending_on_a_disabled_one_is_an_error() -> None:
    with pytest.raises(ComposeError) as info:
        apply_profiles(SAMPLE, set(), file="/p/compose.yaml")
    assert info.value.path == ("services", "web", "depends_on")
    assert 'service "web" depends on service "db", which is disabled' in info.value.message
    assert "(debug)" in info.value.message


@pytest.mark.parametrize(
    "field",
    [{"links": ["db:alias"]}, {"network_mode": "service:db"}, {"volumes_from": ["db:ro"]}],
)
def test_links_network_mode_and_volumes_from_are_dependencies(field: dict[str, Any]) -> None:
    data = project(web={"image": "x", **field}, db={"image": "y", "profiles": ["debug"]})
    with pytest.raises(ComposeError, match='depends on service "db"'):
        apply_profiles(data, set())


def test_optional_dependency_on_a_disabled_service_is_kept() -> None:
    web = {"image": "x", "depends_on": {"db": {"condition": "service_started", "required": False}}}
    data = project(web=web, db={"image": "y", "profiles": ["debug"]})
    assert apply_profiles(data, set())["services"] == {"web": web}


def test_volumes_from_a_container_is_not_a_service() -> None:
    data = project(web={"image": "x", "volumes_from": ["container:abc"]})
    assert names(apply_profiles(data, set())) == ["web"]


def test_undefined_dependency() -> None:
    data = project(web={"image": "x", "depends_on": {"db": {"condition": "service_healthy"}}})
    with pytest.raises(ComposeError, match='"web" depends on undefined service "db"'):
        apply_profiles(data, set())


def test_naming_a_service_activates_all_its_profiles() -> None:
    data = project(
        db={"image": "y", "profiles": ["debug"]},
        tool={"image": "z", "profiles": ["tools", "debug"]},
        other={"image": "o", "profiles": ["other"]},
        plain={"image": "p"},
    )
    assert names(apply_profiles(data, set(), ["db"])) == ["db", "plain", "tool"]


def test_named_service_dependencies_are_not_enabled() -> None:
    data = project(
        tool={"image": "z", "profiles": ["tools"], "depends_on": ["dep"]},
        dep={"image": "z", "profiles": ["other"]},
    )
    with pytest.raises(ComposeError, match='"tool" depends on service "dep", which is disabled'):
        apply_profiles(data, set(), ["tool"])


def test_profiles_activated_by_name_are_checked_only_for_named_services() -> None:
    # `config db`: debug becomes active and enables tool, whose dependency is disabled;
    # compose checks only db and its dependencies at that point.
    data = project(
        db={"image": "y", "profiles": ["debug"]},
        tool={"image": "z", "profiles": ["tools", "debug"], "depends_on": ["dep"]},
        dep={"image": "z", "profiles": ["other"]},
    )
    assert names(apply_profiles(data, set(), ["db"])) == ["db", "tool"]


def test_named_service_already_enabled_changes_nothing() -> None:
    assert names(apply_profiles(SAMPLE, {"debug"}, ["web"])) == ["db", "plain", "tool", "web"]


def test_unknown_named_service() -> None:
    with pytest.raises(ComposeError, match="no such service: nope"):
        apply_profiles(SAMPLE, {"debug"}, ["nope"])


def test_list_profiles_sorted_unique() -> None:
    data = project(
        a={"image": "a", "profiles": ["tools", "debug"]},
        b={"image": "b", "profiles": ["other", "debug"]},
        c={"image": "c"},
    )
    assert list_profiles(data) == ["debug", "other", "tools"]
    assert list_profiles({}) == []


def test_is_enabled() -> None:
    assert is_enabled({"image": "x"}, [])
    assert is_enabled({"profiles": ["a"]}, ["a"])
    assert not is_enabled({"profiles": ["a"]}, ["b"])
    assert is_enabled({"profiles": ["a"]}, ["*"])


def test_dependencies_forms() -> None:
    service = {
        "depends_on": ["a"],
        "links": ["b:alias", "c"],
        "volumes_from": ["d:ro", "container:x"],
        "network_mode": "service:e",
    }
    assert list(dependencies(service)) == [
        ("depends_on", "a"),
        ("links", "b"),
        ("links", "c"),
        ("volumes_from", "d"),
        ("network_mode", "e"),
    ]


def test_input_is_not_modified() -> None:
    data = project(a={"image": "a", "profiles": ["x"]}, b={"image": "b"})
    apply_profiles(data, set())
    assert names(data) == ["a", "b"]
