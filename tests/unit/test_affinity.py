"""CPU lists for pinning a process's threads, and the coordinator's `cpus` setting."""

from __future__ import annotations

import pytest

from agent_sidecar.config import SidecarConfig, from_env_and_args
from coordinator import flags
from swarmmesh import affinity


@pytest.mark.parametrize(("spec", "cpus"), [
    ("", set()),
    ("0", {0}),
    ("0,2", {0, 2}),
    (" 1 , 0 ", {0, 1}),
    ("0-3,8", {0, 1, 2, 3, 8}),
    ("2-2", {2}),
])
def test_cpu_lists_are_read_as_the_kernel_writes_them(spec: str, cpus: set[int]) -> None:
    assert affinity.parse_cpus(spec) == cpus


@pytest.mark.parametrize("spec", ["x", "1-0", "-1", "0-", "1.5", ",", "0-x"])
def test_a_bad_cpu_list_is_refused_with_what_is_wrong(spec: str) -> None:
    with pytest.raises(ValueError, match="CPU"):
        affinity.parse_cpus(spec)


def test_cpu_lists_are_written_with_ranges_joined() -> None:
    assert affinity.format_cpus([5, 0, 1, 2]) == "0-2,5"
    assert affinity.format_cpus({3}) == "3"
    assert affinity.format_cpus([0, 2, 4, 5]) == "0,2,4-5"
    assert affinity.parse_cpus(affinity.format_cpus([0, 2, 4, 5, 6])) == {0, 2, 4, 5, 6}


@pytest.mark.skipif(affinity.allowed() is None, reason="this platform cannot pin threads")
def test_the_coordinator_refuses_cpus_it_may_not_use_and_names_them() -> None:
    may = affinity.allowed()
    assert may
    outside = max(may) + 1000
    assert flags.from_text({"cpus": ""}).server.cpus == frozenset()
    assert flags.from_text({"cpus": str(min(may))}).server.cpus == {min(may)}
    with pytest.raises(ValueError) as bad:
        flags.from_text({"cpus": "x"})
    assert str(bad.value) == "cpus: 'x' is not a CPU number or range (a CPU list such as 0, 0,2 or 0-3)"
    with pytest.raises(ValueError) as refused:
        flags.from_text({"cpus": f"{min(may)},{outside}"})
    assert str(refused.value).startswith(f"cpus: CPU {outside} is not one this process may use (it may use ")
    with pytest.raises(OSError, match=f"CPU {outside} is not one"):
        affinity.pin_process(frozenset({outside}))


@pytest.mark.skipif(affinity.allowed() is None, reason="this platform cannot pin threads")
def test_the_sidecar_takes_cpus_from_its_flag_or_environment_and_refuses_what_it_may_not_use() -> None:
    may = affinity.allowed()
    assert may
    first = min(may)
    assert from_env_and_args(["--cpus", str(first)], {}).cpus == {first}
    assert from_env_and_args([], {"SWARMMESH_CPUS": str(first)}).cpus == {first}
    assert from_env_and_args([], {}).cpus == frozenset()
    with pytest.raises(ValueError, match="SWARMMESH_CPUS: 'x' is not a CPU number"):
        from_env_and_args([], {"SWARMMESH_CPUS": "x"})
    outside = max(may) + 1000
    with pytest.raises(ValueError, match=f"cpus: CPU {outside} is not one this process may use"):
        SidecarConfig(cpus=frozenset({outside}))
