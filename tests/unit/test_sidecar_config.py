"""SidecarConfig: defaults, validation, environment variables and flags."""

from __future__ import annotations

import os

import pytest

from agent_sidecar.config import (
    SidecarConfig,
    build_parser,
    from_env_and_args,
    from_namespace,
    parse_handler,
    parse_handlers,
    parse_labels,
)


def test_defaults() -> None:
    cfg = SidecarConfig()
    assert cfg.coordinator == "127.0.0.1:7070"
    assert cfg.agent_id.endswith(f"-{os.getpid()}")
    assert cfg.capacity == 8
    assert cfg.kinds == ()
    assert dict(cfg.labels) == {}
    assert cfg.reconnect_initial_s == 0.1
    assert cfg.reconnect_max_s == 5.0


def test_config_is_frozen_including_mappings() -> None:
    labels = {"text": 3}
    cfg = SidecarConfig(labels=labels)
    labels["text"] = 9  # the caller's dict is copied
    assert cfg.labels["text"] == 3
    with pytest.raises(AttributeError):
        cfg.capacity = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.labels["x"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"capacity": 0}, "capacity"),
        ({"capacity": 10_001}, "capacity"),
        ({"agent_id": ""}, "agent_id"),
        ({"agent_id": "x" * 129}, "agent_id"),
        ({"labels": {"a": -1}}, "labels['a']"),
        ({"labels": {"": 1}}, "labels"),
        ({"kinds": ("",)}, "kinds"),
        ({"handlers": {"k": "not a spec"}}, "handlers['k']"),
        ({"default_handler": "nocolon"}, "default_handler"),
        ({"heartbeat_interval_s": 0}, "heartbeat_interval_s"),
        ({"reconnect_initial_s": 2.0, "reconnect_max_s": 1.0}, "reconnect_max_s"),
        ({"drain_timeout_s": -1}, "drain_timeout_s"),
        ({"held_results_max": -1}, "held_results_max"),
        ({"log_level": "LOUD"}, "log_level"),
        ({"coordinator": ""}, "coordinator"),
    ],
)
def test_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError) as info:
        SidecarConfig(**kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(field)


def test_text_forms() -> None:
    assert parse_labels("text=3, lang=2") == {"text": 3, "lang": 2}
    assert parse_handler("m.n:f") == (None, "m.n:f")
    assert parse_handler("summarize=m.n:f") == ("summarize", "m.n:f")
    assert parse_handler("*=m:f") == (None, "m:f")
    assert parse_handlers("a=m:f,b=m:g") == {"a": "m:f", "b": "m:g"}
    assert parse_labels("gpu") == {"gpu": 0}
    with pytest.raises(ValueError, match="NAME=LEVEL"):
        parse_labels("=3")
    with pytest.raises(ValueError, match="integer"):
        parse_labels("text=high")
    with pytest.raises(ValueError, match="KIND="):
        parse_handlers("m:f")


def test_environment_variables() -> None:
    env = {
        "SWARMMESH_COORDINATOR": "127.0.0.1:9999",
        "SWARMMESH_AGENT_ID": "agent-7",
        "SWARMMESH_LABELS": "text=3,lang=2",
        "SWARMMESH_KINDS": "a,b",
        "SWARMMESH_CAPACITY": "4",
        "SWARMMESH_HANDLER": "json:dumps",
        "SWARMMESH_HANDLERS": "a=json:loads,b=builtins:repr",
        "SWARMMESH_LOG_LEVEL": "debug",
    }
    cfg = from_env_and_args([], env)
    assert cfg.coordinator == "127.0.0.1:9999"
    assert cfg.agent_id == "agent-7"
    assert dict(cfg.labels) == {"text": 3, "lang": 2}
    assert cfg.kinds == ("a", "b")
    assert cfg.capacity == 4
    assert cfg.default_handler == "json:dumps"
    assert dict(cfg.handlers) == {"a": "json:loads", "b": "builtins:repr"}
    assert cfg.log_level == "DEBUG"


def test_flags_override_environment() -> None:
    env = {
        "SWARMMESH_AGENT_ID": "from-env",
        "SWARMMESH_LABELS": "text=3",
        "SWARMMESH_CAPACITY": "4",
        "SWARMMESH_HANDLER": "json:dumps",
        "SWARMMESH_HANDLERS": "a=json:loads",
    }
    argv = [
        "--agent-id",
        "from-flag",
        "--label",
        "lang=2",
        "--label",
        "gpu=1",
        "--kinds",
        "x,y",
        "--capacity",
        "16",
        "--handler",
        "x=builtins:repr",
        "--handler",
        "y=builtins:str",
        "--version-tag",
        "v1.2",
        "--heartbeat-interval",
        "0.5",
    ]
    cfg = from_env_and_args(argv, env)
    assert cfg.agent_id == "from-flag"
    assert dict(cfg.labels) == {"lang": 2, "gpu": 1}  # replaced, not merged
    assert cfg.kinds == ("x", "y")
    assert cfg.capacity == 16
    # --handler KIND=... replaces SWARMMESH_HANDLERS; the default still comes from env.
    assert dict(cfg.handlers) == {"x": "builtins:repr", "y": "builtins:str"}
    assert cfg.default_handler == "json:dumps"
    assert cfg.version == "v1.2"
    assert cfg.heartbeat_interval_s == 0.5


def test_default_handler_flag_and_star_in_env() -> None:
    cfg = from_env_and_args(
        ["--handler", "builtins:repr"], {"SWARMMESH_HANDLERS": "*=json:dumps,a=json:loads"}
    )
    assert cfg.default_handler == "builtins:repr"
    assert dict(cfg.handlers) == {"a": "json:loads"}
    cfg = from_env_and_args([], {"SWARMMESH_HANDLERS": "*=json:dumps"})
    assert cfg.default_handler == "json:dumps"
    assert dict(cfg.handlers) == {}


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match=r"^SWARMMESH_LABELS: "):
        from_env_and_args([], {"SWARMMESH_LABELS": "text=lots"})
    with pytest.raises(ValueError, match=r"^SWARMMESH_CAPACITY: "):
        from_env_and_args([], {"SWARMMESH_CAPACITY": "lots"})
    with pytest.raises(ValueError, match=r"^capacity: "):
        from_env_and_args([], {"SWARMMESH_CAPACITY": "0"})


def test_bad_flag_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--label", "text=-1"])
    assert info.value.code == 2
    assert "--label" in capsys.readouterr().err


def test_empty_env_values_are_ignored() -> None:
    ns = build_parser().parse_args([])
    cfg = from_namespace(ns, {"SWARMMESH_KINDS": "", "SWARMMESH_AGENT_ID": "  "})
    assert cfg.kinds == ()
    assert cfg.agent_id.endswith(f"-{os.getpid()}")


def test_held_results_bound_from_flag_or_environment() -> None:
    assert SidecarConfig().held_results_max == 10_000
    assert SidecarConfig(held_results_max=0).held_results_max == 0  # keep none
    assert from_env_and_args([], {"SWARMMESH_HELD_RESULTS": "50"}).held_results_max == 50
    flag = from_env_and_args(["--held-results", "7"], {"SWARMMESH_HELD_RESULTS": "50"})
    assert flag.held_results_max == 7
