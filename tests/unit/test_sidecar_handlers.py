"""Handler loading, the handler registry and return-value conversion."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from agent_sidecar.handlers import (
    HandlerLoadError,
    HandlerRegistry,
    Result,
    TaskContext,
    is_async_handler,
    load_handler,
    request_cancel,
    to_output,
)

HANDLER_MODULE = """
import asyncio

def sync_echo(ctx):
    return ctx.payload

async def async_echo(ctx):
    await asyncio.sleep(0)
    return ctx.payload

class Holder:
    @staticmethod
    def method(ctx):
        return "held"

NOT_CALLABLE = 42
"""


@pytest.fixture
def handler_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"sidecar_test_handlers_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(HANDLER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def make_ctx(payload: bytes = b"", **kw: object) -> TaskContext:
    fields: dict[str, object] = {
        "task_id": "t1",
        "attempt": 1,
        "kind": "k",
        "payload": payload,
        "content_type": "",
        "tenant": "",
        "priority": 0,
        "deadline": None,
        "trace_context": {},
        "agent_id": "a",
    }
    fields.update(kw)
    return TaskContext(**fields)  # type: ignore[arg-type]


def test_load_handler(handler_module: str) -> None:
    fn = load_handler(f"{handler_module}:sync_echo")
    assert fn(make_ctx(b"x")) == b"x"
    assert not is_async_handler(fn)
    assert is_async_handler(load_handler(f"{handler_module}:async_echo"))
    assert load_handler(f"{handler_module}:Holder.method")(make_ctx()) == "held"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon_here", "expected 'module:function'"),
        (":f", "expected 'module:function'"),
        ("surely_not_a_module_xyz:f", "cannot import module 'surely_not_a_module_xyz'"),
        ("{mod}:missing", "has no attribute 'missing'"),
        ("{mod}:NOT_CALLABLE", "is a int, not callable"),
    ],
)
def test_load_handler_errors(handler_module: str, spec: str, message: str) -> None:
    with pytest.raises(HandlerLoadError, match=message.replace("(", r"\(")):
        load_handler(spec.format(mod=handler_module))


def test_handler_load_error_is_a_value_error() -> None:
    assert issubclass(HandlerLoadError, ValueError)


def test_async_callable_object_is_async() -> None:
    class Handler:
        async def __call__(self, ctx: TaskContext) -> None:
            return None

    assert is_async_handler(Handler())


def test_registry_lookup_and_default(handler_module: str) -> None:
    reg = HandlerRegistry.from_specs({"echo": f"{handler_module}:sync_echo"})
    assert reg.lookup("echo") is not None
    assert reg.lookup("other") is None
    assert reg.advertised_kinds() == ["echo"]
    reg.register("*", lambda ctx: None)
    assert reg.lookup("other") is not None
    assert reg.advertised_kinds() == []  # a default handler covers every kind
    assert reg.advertised_kinds(["x"]) == ["x"]


def test_registry_rejects_kinds_without_handler(handler_module: str) -> None:
    reg = HandlerRegistry.from_specs({"echo": f"{handler_module}:sync_echo"})
    with pytest.raises(ValueError, match="kinds: no handler for 'nope'"):
        reg.advertised_kinds(["echo", "nope"])


def test_registry_loads_eagerly() -> None:
    with pytest.raises(HandlerLoadError):
        HandlerRegistry.from_specs({}, default="json:no_such_function")


@pytest.mark.parametrize(
    ("value", "output", "content_type"),
    [
        (b"\x00\x01", b"\x00\x01", "application/octet-stream"),
        (bytearray(b"ab"), b"ab", "application/octet-stream"),
        ("héllo", "héllo".encode(), "text/plain"),
        ({"a": [1, 2]}, b'{"a":[1,2]}', "application/json"),
        ([1, "x"], b'[1,"x"]', "application/json"),
        (3, b"3", "application/json"),
        (2.5, b"2.5", "application/json"),
        (True, b"true", "application/json"),
        (None, b"", ""),
        (Result(b"<p/>", "text/html"), b"<p/>", "text/html"),
        (Result(b"raw"), b"raw", "application/octet-stream"),
    ],
)
def test_to_output(value: object, output: bytes, content_type: str) -> None:
    assert to_output(value) == (output, content_type)


def test_to_output_rejects_what_has_no_wire_form() -> None:
    with pytest.raises(TypeError, match="handler returned object"):
        to_output(object())
    with pytest.raises(ValueError):
        to_output({"x": math.nan})


def test_context_helpers() -> None:
    ctx = make_ctx(json.dumps({"n": 1}).encode())
    assert ctx.json() == {"n": 1}
    assert ctx.text() == '{"n":1}'.replace(":", ": ")
    assert ctx.remaining() is None
    assert not ctx.cancelled()
    request_cancel(ctx)
    assert ctx.cancelled()
    timed = make_ctx(deadline=0.0)
    remaining = timed.remaining()
    assert remaining is not None and remaining < 0
