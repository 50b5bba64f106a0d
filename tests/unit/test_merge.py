"""Merge rules for multiple -f files.

Every expectation below was checked against docker compose v2.40.3
(`docker-compose -f a.yaml -f b.yaml config --format json`); where the reference prints a
normalised form (long port syntax, absolute paths) the raw equivalent is asserted here.
tests/integration/test_merge_reference.py replays a selection of them against the binary.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pycompose.compose.errors import ComposeError
from pycompose.compose.merge import (
    dedupe,
    enforce_unique,
    expand_port_ranges,
    merge,
    split_port,
    strip_tags,
)
from pycompose.compose.tags import Override, Reset


def web(**fields: Any) -> dict[str, Any]:
    return {"services": {"web": fields}}


def merged_web(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    result = merge(web(**base), web(**override))
    svc = result["services"]["web"]
    assert isinstance(svc, dict)
    return svc


# --------------------------------------------------------------------------- defaults


def test_mappings_merge_recursively_and_scalars_are_replaced() -> None:
    out = merge(
        {"x-top": {"a": 1, "b": {"c": 1}}, "name": "one", "services": {"web": {"image": "a"}}},
        {"x-top": {"b": {"d": 2}}, "name": "two", "services": {"db": {"image": "b"}}},
    )
    assert out == {
        "x-top": {"a": 1, "b": {"c": 1, "d": 2}},
        "name": "two",
        "services": {"web": {"image": "a"}, "db": {"image": "b"}},
    }


def test_null_override_keeps_the_earlier_value() -> None:
    assert merged_web({"image": "busybox"}, {"image": None}) == {"image": "busybox"}


def test_plain_sequences_append() -> None:
    assert merge({"x-l": ["a", "b"]}, {"x-l": ["a"]}) == {"x-l": ["a", "b", "a"]}


def test_inputs_are_not_modified() -> None:
    base = web(environment=["A=1"], ports=["80:80"], networks={"n": {"aliases": ["x"]}})
    over = web(environment={"B": 2}, ports=["81:81"], networks={"n": {"aliases": ["y"]}})
    snapshot = copy.deepcopy((base, over))
    out = merge(base, over)
    out["services"]["web"]["networks"]["n"]["aliases"].append("z")
    assert (base, over) == snapshot


def test_type_mismatch_is_an_error_naming_file_and_path() -> None:
    with pytest.raises(ComposeError) as info:
        merge(web(healthcheck={"test": ["CMD", "x"]}), web(healthcheck=["x"]), file="b.yaml")
    assert info.value.file == "b.yaml"
    assert info.value.path == ("services", "web", "healthcheck")
    assert "b.yaml services.web.healthcheck: cannot override a mapping" in str(info.value)


def test_sequence_replaced_by_scalar_is_an_error() -> None:
    with pytest.raises(ComposeError, match=r"services\.web\.group_add"):
        merge(web(group_add=["a"]), web(group_add="b"))


# --------------------------------------------------------------------------- replace rules


@pytest.mark.parametrize("field", ["command", "entrypoint"])
def test_command_and_entrypoint_are_replaced(field: str) -> None:
    assert merged_web({field: ["a", "b"]}, {field: "c"}) == {field: "c"}
    assert merged_web({field: "x y"}, {field: ["z"]}) == {field: ["z"]}


def test_healthcheck_merges_but_its_test_is_replaced() -> None:
    out = merged_web(
        {"healthcheck": {"test": ["CMD", "a"], "interval": "5s", "retries": 3}},
        {"healthcheck": {"test": ["CMD", "b"], "interval": "6s"}},
    )
    assert out == {"healthcheck": {"test": ["CMD", "b"], "interval": "6s", "retries": 3}}


def test_ulimits_entries_are_replaced_whole() -> None:
    out = merged_web(
        {"ulimits": {"nofile": {"soft": 1, "hard": 2}, "nproc": {"soft": 1, "hard": 2}}},
        {"ulimits": {"nofile": {"soft": 3, "hard": 4}, "nproc": 5}},
    )
    assert out == {"ulimits": {"nofile": {"soft": 3, "hard": 4}, "nproc": 5}}


# --------------------------------------------------------------------------- ports


def test_ports_merge_by_binding_short_and_long_syntax() -> None:
    out = merged_web(
        {"ports": ["8080:80", "127.0.0.1:9000:90/udp", {"target": 100, "published": "1000"}]},
        {"ports": ["8080:80", "8081:80", "127.0.0.1:9000:90/udp", "1000:100", "9000:90"]},
    )
    # reference: 8080:80 once, the udp binding once, 1000:100 replaces the long form in place
    assert out["ports"] == ["8080:80", "127.0.0.1:9000:90/udp", "1000:100", "8081:80", "9000:90"]


def test_ports_default_host_ip_and_bare_target() -> None:
    out = merged_web({"ports": [80, "0.0.0.0:8080:80"]}, {"ports": ["80", "8080:80"]})
    assert out["ports"] == ["80", "8080:80"]


def test_ports_protocol_and_host_ip_distinguish_bindings() -> None:
    out = merged_web({"ports": ["9000:90/udp", "127.0.0.1:80:80"]}, {"ports": ["9000:90", "80:80"]})
    assert out["ports"] == ["9000:90/udp", "127.0.0.1:80:80", "9000:90", "80:80"]


def test_port_ranges_are_split_before_comparing() -> None:
    out = merged_web({"ports": ["7000-7001:70-71"]}, {"ports": ["7001:71"]})
    assert out["ports"] == ["7000:70", "7001:71"]


def test_split_port_forms() -> None:
    assert split_port("80") == ("", "", "80", "tcp")
    assert split_port("8080:80/udp") == ("", "8080", "80", "udp")
    assert split_port("127.0.0.1:8080:80") == ("127.0.0.1", "8080", "80", "tcp")
    assert split_port("[::1]:8080:80") == ("::1", "8080", "80", "tcp")
    assert split_port("127.0.0.1::80") == ("127.0.0.1", "", "80", "tcp")


def test_expand_port_ranges_keeps_uneven_ranges() -> None:
    assert expand_port_ranges(["8000-8010:80", "1-2:3-4/udp", {"target": 1}]) == [
        "8000-8010:80",
        "1:3/udp",
        "2:4/udp",
        {"target": 1},
    ]


# --------------------------------------------------------------------------- mounts


def test_volumes_merge_by_target() -> None:
    out = merged_web(
        {"volumes": ["./data:/data", "vol:/v:ro", {"type": "tmpfs", "target": "/t"}]},
        {"volumes": ["./other:/data", {"type": "volume", "source": "vol2", "target": "/v"}]},
    )
    assert out["volumes"] == [
        "./other:/data",
        {"type": "volume", "source": "vol2", "target": "/v"},
        {"type": "tmpfs", "target": "/t"},
    ]


def test_secrets_merge_by_target_with_default_dir() -> None:
    out = merged_web(
        {"secrets": ["s1", {"source": "s2", "target": "/run/secrets/s2"}]},
        {"secrets": [{"source": "s1"}, "s2", {"source": "s1", "target": "/x"}]},
    )
    assert out["secrets"] == [{"source": "s1"}, "s2", {"source": "s1", "target": "/x"}]


def test_configs_merge_by_target() -> None:
    out = merged_web({"configs": ["c1", "c2"]}, {"configs": [{"source": "c1"}, "c3"]})
    assert out["configs"] == [{"source": "c1"}, "c2", "c3"]


def test_devices_merge_by_container_path() -> None:
    out = merged_web(
        {"devices": ["/dev/a:/dev/a", "/dev/c"]},
        {"devices": ["/dev/a:/dev/b", "/dev/x:/dev/c"]},
    )
    assert out["devices"] == ["/dev/a:/dev/a", "/dev/x:/dev/c", "/dev/a:/dev/b"]


def test_expose_merges_numbers_and_strings() -> None:
    assert merged_web({"expose": [80, "81"]}, {"expose": ["80", 81, "82"]}) == {
        "expose": ["80", 81, "82"]
    }


# --------------------------------------------------------------------------- maps


@pytest.mark.parametrize("field", ["environment", "labels", "sysctls", "annotations"])
def test_list_or_map_fields_merge_as_sequences(field: str) -> None:
    # As compose: both sides as NAME=value lists (maps sorted by name); a later name
    # replaces an earlier one where it stood, a new one is appended.
    out = merged_web({field: ["A=1", "B=2", "C"]}, {field: {"A": 3, "D": 4}})
    assert out[field] == ["A=3", "B=2", "C", "D=4"]
    out = merged_web({field: {"l1": "a"}}, {field: ["l2=b", "l1=c"]})
    assert out[field] == ["l1=c", "l2=b"]
    out = merged_web({field: {"b": True, "a": 1.5}}, {field: {"c": None}})
    assert out[field] == ["a=1.5", "b=true", "c"]


def test_environment_name_without_value_unsets() -> None:
    assert merged_web({"environment": ["A=1", "B=2"]}, {"environment": {"A": None}}) == {
        "environment": ["A", "B=2"]
    }


def test_environment_entry_reset() -> None:
    out = merged_web({"environment": {"A": "1", "B": "2"}}, {"environment": {"A": Reset()}})
    assert out == {"environment": ["B=2"]}


@pytest.mark.parametrize(
    "path",
    [("build", "args"), ("build", "labels"), ("deploy", "labels")],
)
def test_nested_label_and_arg_maps(path: tuple[str, str]) -> None:
    outer, inner = path
    out = merged_web({outer: {inner: ["A=1"]}}, {outer: {inner: {"B": "2"}}})
    assert out[outer][inner] == ["A=1", "B=2"]


def test_top_level_network_and_volume_labels() -> None:
    out = merge(
        {"networks": {"n": {"labels": ["a=1"]}}, "volumes": {"v": {"labels": {"b": "1"}}}},
        {"networks": {"n": {"labels": {"c": "2"}}}, "volumes": {"v": {"labels": ["b=2"]}}},
    )
    assert out["networks"]["n"]["labels"] == {"a": "1", "c": "2"}
    assert out["volumes"]["v"]["labels"] == {"b": "2"}


def test_extra_hosts_list_and_map_forms() -> None:
    out = merged_web(
        {"extra_hosts": ["h1:1.1.1.1", "h3=3.3.3.3"]},
        {"extra_hosts": {"h2": ["4.4.4.4", "2.2.2.2"], "h1": "3.3.3.3"}},
    )
    # the reference keeps both addresses of h1 (a host may have several)
    assert out["extra_hosts"] == [
        "h1:1.1.1.1",
        "h3=3.3.3.3",
        "h1=3.3.3.3",
        "h2=2.2.2.2",
        "h2=4.4.4.4",
    ]


def test_extra_hosts_identical_entries_are_not_repeated() -> None:
    out = merged_web({"extra_hosts": ["h=1.1.1.1"]}, {"extra_hosts": {"h": "1.1.1.1"}})
    assert out["extra_hosts"] == ["h=1.1.1.1"]


# --------------------------------------------------------------------------- scalar-or-list


@pytest.mark.parametrize("field", ["dns", "dns_search", "dns_opt"])
def test_dns_fields_scalar_or_list(field: str) -> None:
    assert merged_web({field: "8.8.8.8"}, {field: ["1.1.1.1", "8.8.8.8"]}) == {
        field: ["8.8.8.8", "1.1.1.1"]
    }
    assert merged_web({field: "a"}, {field: "b"}) == {field: ["a", "b"]}


def test_tmpfs_scalar_or_list_deduplicated_by_option_name() -> None:
    out = merged_web({"tmpfs": ["/run:size=1m", "/x"]}, {"tmpfs": "/run:size=2m"})
    assert out["tmpfs"] == ["/run:size=2m", "/x"]
    assert merged_web({"tmpfs": "/run"}, {"tmpfs": ["/tmp"]}) == {"tmpfs": ["/run", "/tmp"]}


def test_env_file_scalar_list_and_long_form() -> None:
    out = merged_web(
        {"env_file": "a.env"},
        {"env_file": [{"path": "a.env", "required": False}, "b.env"]},
    )
    assert out["env_file"] == [{"path": "a.env", "required": False}, "b.env"]


def test_label_file_appends() -> None:
    assert merged_web({"label_file": "a"}, {"label_file": ["b"]}) == {"label_file": ["a", "b"]}


# --------------------------------------------------------------------------- references


def test_depends_on_list_and_map_forms() -> None:
    out = merged_web(
        {"depends_on": ["db", "cache"]}, {"depends_on": {"db": {"condition": "service_healthy"}}}
    )
    assert out["depends_on"] == {
        "db": {"condition": "service_healthy", "required": True},
        "cache": {"condition": "service_started", "required": True},
    }


def test_service_networks_list_and_map_forms() -> None:
    out = merged_web({"networks": ["n1"]}, {"networks": {"n2": {"aliases": ["x"]}}})
    assert out["networks"] == {"n1": None, "n2": {"aliases": ["x"]}}


def test_service_network_null_keeps_earlier_settings_and_aliases_dedupe() -> None:
    out = merged_web({"networks": {"n1": {"aliases": ["a"]}}}, {"networks": {"n1": None}})
    assert out["networks"] == {"n1": {"aliases": ["a"]}}
    out = merged_web(
        {"networks": {"n1": {"aliases": ["a"]}}}, {"networks": {"n1": {"aliases": ["a", "b"]}}}
    )
    assert out["networks"] == {"n1": {"aliases": ["a", "b"]}}


@pytest.mark.parametrize("field", ["profiles", "cap_add", "cap_drop", "links"])
def test_name_lists_append_without_duplicates(field: str) -> None:
    assert merged_web({field: ["a", "b"]}, {field: ["b", "c"]}) == {field: ["a", "b", "c"]}


def test_build_short_string_and_mapping() -> None:
    assert merged_web({"build": "./a"}, {"build": "./b"}) == {"build": {"context": "./b"}}
    assert merged_web({"build": "."}, {"build": {"dockerfile": "D"}}) == {
        "build": {"context": ".", "dockerfile": "D"}
    }
    assert merged_web({"build": {"context": "a", "target": "t"}}, {"build": "b"}) == {
        "build": {"context": "b", "target": "t"}
    }


def test_null_base_values_take_the_override() -> None:
    assert merged_web(
        {"build": None, "environment": None}, {"build": "b", "environment": ["A=1"]}
    ) == {
        "build": {"context": "b"},
        "environment": ["A=1"],
    }


def test_logging_merges_options_for_the_same_driver() -> None:
    out = merged_web(
        {"logging": {"driver": "json-file", "options": {"max-size": "1m"}}},
        {"logging": {"options": {"max-file": "2"}}},
    )
    assert out["logging"] == {"driver": "json-file", "options": {"max-size": "1m", "max-file": "2"}}


def test_logging_replaced_for_another_driver() -> None:
    out = merged_web(
        {"logging": {"driver": "json-file", "options": {"max-size": "1m"}}},
        {"logging": {"driver": "syslog", "options": {"tag": "x"}}},
    )
    assert out["logging"] == {"driver": "syslog", "options": {"tag": "x"}}


def ipam(*pools: dict[str, str]) -> dict[str, Any]:
    return {"networks": {"n": {"ipam": {"config": list(pools)}}}}


def test_ipam_config_merges_pools_of_the_same_subnet() -> None:
    out = merge(
        ipam({"subnet": "10.0.0.0/24", "gateway": "10.0.0.1"}),
        ipam({"subnet": "10.0.0.0/24", "ip_range": "10.0.0.0/25"}),
    )
    assert out["networks"]["n"]["ipam"]["config"] == [
        {"subnet": "10.0.0.0/24", "gateway": "10.0.0.1", "ip_range": "10.0.0.0/25"}
    ]


def test_ipam_config_another_subnet_replaces() -> None:
    out = merge(ipam({"subnet": "10.0.0.0/24"}), ipam({"subnet": "10.9.0.0/24"}))
    assert out["networks"]["n"]["ipam"]["config"] == [{"subnet": "10.9.0.0/24"}]


# --------------------------------------------------------------------------- tags


def test_reset_removes_and_override_replaces() -> None:
    out = merged_web(
        {
            "image": "busybox",
            "environment": ["A=1", "B=2"],
            "ports": ["8080:80"],
            "command": ["a"],
            "labels": {"a": "b"},
            "volumes": ["/a:/a"],
            "networks": {"n1": {"aliases": ["a"]}},
        },
        {
            "environment": Override({"C": 3}),
            "ports": Reset(),
            "command": Reset(),
            "labels": Reset(),
            "volumes": Override(["/b:/b"]),
            "networks": Override({"n1": {"aliases": ["b"]}}),
            "extra_hosts": Reset(),
        },
    )
    assert out == {
        "image": "busybox",
        "environment": {"C": 3},
        "volumes": ["/b:/b"],
        "networks": {"n1": {"aliases": ["b"]}},
    }


def test_tags_nested_in_new_values_are_resolved() -> None:
    out = merge({}, web(image="x", ports=["80", Reset()], labels=Override({"a": Reset()})))
    assert out == web(image="x", ports=["80"], labels={})


def test_tags_left_in_the_base_act_as_in_a_single_file() -> None:
    assert merge(web(image="x", ports=Reset()), {}) == web(image="x")


def test_strip_tags_single_file() -> None:
    data = {"a": Reset(), "b": Override([1, Reset(), {"c": Reset(), "d": 2}]), "e": None}
    assert strip_tags(data) == {"b": [1, {"d": 2}], "e": None}


# --------------------------------------------------------------------------- unicity


def test_enforce_unique_within_one_file() -> None:
    data = web(ports=["80:80", "80:80"], volumes=["/a:/x", "/b:/x"], cap_add=["A", "A"])
    assert enforce_unique(data) == web(ports=["80:80"], volumes=["/b:/x"], cap_add=["A"])


def test_dedupe_keeps_first_position_and_last_value() -> None:
    assert dedupe(["a=1", "b=1", "a=2"], lambda e: str(e).split("=")[0]) == ["a=2", "b=1"]


def test_three_files_fold_left() -> None:
    first = web(image="a", environment=["A=1"], ports=["80:80"])
    second = web(environment={"B": "2"}, ports=["81:81"])
    third = web(image="c", environment=["A=3"], ports=["80:80"])
    out = merge(merge(first, second), third)
    assert out == web(image="c", environment=["A=3", "B=2"], ports=["80:80", "81:81"])
