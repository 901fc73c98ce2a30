"""The ``swarmmesh`` command: run the processes, submit and inspect work.

This module is the entry point (``swarmmesh`` and ``python -m swarmmesh.cli``):
it hands delegated subcommands to their program, parses the rest and turns
errors into one line on stderr and an exit code. The parser is in
``_cli_args``, what the client subcommands do in ``_cli_commands`` (with the
exit codes, see ``swarmmesh --help``) and the hand-off in ``_cli_delegate``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from swarmmesh._cli_args import ENV_COORDINATOR, build_parser
from swarmmesh._cli_commands import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CLIError
from swarmmesh._cli_delegate import delegate, split_delegated
from swarmmesh.errors import SwarmMeshError, Unavailable

__all__ = ["build_parser", "main"]


def _error(message: str) -> None:
    print(f"swarmmesh: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    delegated = split_delegated(args)
    if delegated is not None:
        return delegate(*delegated)
    parser = build_parser()
    ns = parser.parse_args(args)
    if getattr(ns, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(ns.func(ns))
    except Unavailable as exc:
        _error(f"cannot reach the coordinator at {ns.coordinator} ({exc.code_name}: {exc.details})")
        print(
            f"  start one with `swarmmesh coordinator`, or point --coordinator / {ENV_COORDINATOR} at it",
            file=sys.stderr,
        )
    except SwarmMeshError as exc:
        _error(f"{exc.code_name}: {exc.details}")
        for note in getattr(exc, "__notes__", ()):
            print(f"  {note}", file=sys.stderr)
    except CLIError as exc:
        _error(str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, and keep Python from
        # complaining while flushing stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
