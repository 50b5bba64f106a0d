"""The embedded resolver's name table: names, aliases, services, PTR, network isolation."""

from __future__ import annotations

import threading
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from pycompose.netns.dns_records import DnsError, NameTable, reverse_name

WEB_ID = "a" * 64
API_ID = "b" * 64
DB_ID = "c" * 64


def table() -> NameTable:
    names = NameTable()
    names.set(
        WEB_ID,
        "proj-web-1",
        WEB_ID[:12],
        "front",
        ipv4="10.1.0.2",
        ipv6="fd00::2",
        aliases=["www"],
        service="web",
    )
    names.set(API_ID, "proj-web-2", API_ID[:12], "front", ipv4="10.1.0.3", service="web")
    names.set(DB_ID, "proj-db-1", DB_ID[:12], "back", ipv4="10.2.0.2", service="db")
    return names


def addresses(names: NameTable, qname: str, networks: set[str]) -> set[str]:
    found = names.lookup(qname, frozenset(networks))
    assert found is not None, qname
    return {str(entry.ipv4) for entry in found}


def test_names_short_ids_aliases_and_services() -> None:
    names = table()
    front = {"front"}
    assert addresses(names, "proj-web-1", front) == {"10.1.0.2"}
    assert addresses(names, WEB_ID[:12], front) == {"10.1.0.2"}
    assert addresses(names, "www", front) == {"10.1.0.2"}
    assert addresses(names, "web", front) == {"10.1.0.2", "10.1.0.3"}
    assert addresses(names, "proj-web-1.front", front) == {"10.1.0.2"}


def test_lookup_is_case_insensitive_on_stored_names() -> None:
    names = NameTable()
    names.set(WEB_ID, "Web-One", WEB_ID[:12], "Front", ipv4="10.1.0.2", aliases=["WWW."])
    assert names.lookup("web-one", frozenset({"front"})) is not None
    assert names.lookup("www", frozenset({"front"})) is not None
    assert names.lookup("web-one.front", frozenset({"front"})) is not None


def test_other_networks_are_invisible() -> None:
    names = table()
    assert names.lookup("proj-db-1", frozenset({"front"})) is None
    assert names.lookup("db", frozenset({"front"})) is None
    assert names.lookup("proj-db-1.back", frozenset({"front"})) is None
    assert addresses(names, "db", {"front", "back"}) == {"10.2.0.2"}
    assert names.reverse(reverse_name(IPv4Address("10.2.0.2")), frozenset({"front"})) is None


def test_a_container_on_two_networks_answers_with_the_address_of_each() -> None:
    names = table()
    names.set(DB_ID, "proj-db-1", DB_ID[:12], "front", ipv4="10.1.0.9", service="db")
    assert addresses(names, "db", {"front"}) == {"10.1.0.9"}
    assert addresses(names, "db", {"back"}) == {"10.2.0.2"}
    assert names.remove(DB_ID, "front") == 1
    assert names.lookup("db", frozenset({"front"})) is None
    assert addresses(names, "db", {"back"}) == {"10.2.0.2"}


def test_replicas_come_back_shuffled() -> None:
    names = NameTable()
    for index in range(6):
        names.set(
            f"{index:064x}",
            f"proj-web-{index}",
            f"{index:012x}",
            "front",
            ipv4=f"10.1.0.{index + 2}",
            service="web",
        )
    orders = {
        tuple(str(entry.ipv4) for entry in names.lookup("web", frozenset({"front"})) or [])
        for _ in range(50)
    }
    assert len(orders) > 1
    assert all(len(order) == 6 for order in orders)


def test_reverse_lookup_finds_name_dot_network() -> None:
    names = table()
    found = names.reverse(reverse_name(ip_address("fd00::2")), frozenset({"front"}))
    assert found is not None
    assert [entry.ptr_name() for entry in found] == ["proj-web-1.front"]
    assert reverse_name(IPv4Address("10.1.0.2")) == "2.0.1.10.in-addr.arpa"


def test_set_replaces_and_remove_forgets_at_once() -> None:
    names = table()
    names.set(WEB_ID, "renamed", WEB_ID[:12], "front", ipv4="10.1.0.7")
    assert names.lookup("proj-web-1", frozenset({"front"})) is None
    assert names.lookup("www", frozenset({"front"})) is None
    assert addresses(names, "renamed", {"front"}) == {"10.1.0.7"}
    assert addresses(names, "web", {"front"}) == {"10.1.0.3"}
    assert names.reverse(reverse_name(IPv4Address("10.1.0.2")), frozenset({"front"})) is None
    assert names.remove(API_ID) == 1
    assert names.lookup("web", frozenset({"front"})) is None
    assert names.remove(API_ID) == 0
    assert {entry.container_id for entry in names.entries()} == {WEB_ID, DB_ID}


def test_ipv6_only_entries() -> None:
    names = NameTable()
    names.set(WEB_ID, "six", WEB_ID[:12], "v6net", ipv6=IPv6Address("fd00::5"))
    found = names.lookup("six", frozenset({"v6net"}))
    assert found is not None
    assert found[0].ipv4 is None and str(found[0].ipv6) == "fd00::5"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ipv4": "10.0.0.300"}, "not an IP address"),
        ({"ipv4": "fd00::1"}, "not an IPv4 address"),
        ({"ipv6": "10.0.0.1"}, "not an IPv6 address"),
        ({}, "no IPv4 or IPv6 address"),
        ({"ipv4": "10.0.0.1", "aliases": ["bad..alias"]}, "alias 'bad..alias'"),
        ({"ipv4": "10.0.0.1", "service": "x" * 64}, "service name"),
    ],
)
def test_bad_entries_are_refused_with_the_reason(kwargs: dict[str, object], message: str) -> None:
    names = NameTable()
    with pytest.raises(DnsError, match=message):
        names.set(WEB_ID, "web", WEB_ID[:12], "front", **kwargs)  # type: ignore[arg-type]
    assert names.entries() == []


def test_readers_never_fail_while_writers_change_the_table() -> None:
    names = NameTable()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        index = 0
        while not stop.is_set():
            cid = f"{index % 20:064x}"
            names.set(
                cid,
                f"c{index % 20}",
                cid[:12],
                "front",
                ipv4=f"10.1.0.{index % 20 + 2}",
                service="web",
            )
            if index % 3 == 0:
                names.remove(cid)
            index += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(20000):
            found = names.lookup("web", frozenset({"front"}))
            assert found is None or all(entry.service == "web" for entry in found)
    except BaseException as err:
        errors.append(err)
    finally:
        stop.set()
        thread.join()
    assert errors == []
