"""The ``swarmmesh`` subcommands that are other programs: coordinator, sidecar, bench.

``swarmmesh coordinator ...`` hands every further argument to that program's
``main(argv)`` untouched, so it is recognised here before argparse sees (and
would reject) the program's own options.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from swarmmesh._cli_commands import EXIT_ERROR

#: Subcommands that hand every further argument to another program's ``main(argv)``.
DELEGATES: dict[str, tuple[str, str]] = {
    "coordinator": ("coordinator.__main__", "run the coordinator server"),
    "sidecar": ("agent_sidecar.__main__", "run an agent sidecar"),
    "bench": ("bench.__main__", "run the benchmark suite (W1 throughput, W2 latency, W3 many agents)"),
}
# Global options that may precede a delegated subcommand: option -> takes a value
# (the top-level options of ``_cli_args.build_parser``).
_GLOBAL_OPTIONS = {"--coordinator": True, "--rpc-timeout": True, "--json": False}


def split_delegated(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """If ``argv`` names a delegated subcommand (after global options), return it and its arguments.

    A global ``--coordinator`` is forwarded to the sidecar, which needs it too.
    """
    coordinator: str | None = None
    i = 0
    while i < len(argv):
        token = argv[i]
        option, eq, value = token.partition("=")
        if option in _GLOBAL_OPTIONS:
            takes_value = _GLOBAL_OPTIONS[option]
            if takes_value and not eq:
                if i + 1 >= len(argv):
                    return None
                value = argv[i + 1]
                i += 1
            if option == "--coordinator":
                coordinator = value
            i += 1
            continue
        if token in DELEGATES:
            rest = list(argv[i + 1 :])
            if token == "sidecar" and coordinator is not None:
                rest = ["--coordinator", coordinator, *rest]
            return token, rest
        return None
    return None


def delegate(name: str, argv: list[str]) -> int:
    module_name = DELEGATES[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"swarmmesh: error: {name} is not installed ({module_name} not found)", file=sys.stderr)
            return EXIT_ERROR
        raise
    result = module.main(argv)
    return int(result or 0)
