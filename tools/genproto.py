"""Regenerate the checked-in Python wire code from protos/.

Usage:
    python tools/genproto.py            # write swarmmesh/v1/*_pb2*.py
    python tools/genproto.py --check    # exit 1 if the checked-in code is stale
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE_DIR = Path("swarmmesh") / "v1"


def _protos() -> list[str]:
    return sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))


def generate(out: Path) -> list[Path]:
    """Run protoc into `out` and return the generated files (relative paths)."""
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *_protos(),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    init = out / PACKAGE_DIR / "__init__.py"
    init.write_text('"""Generated wire code for swarmmesh.v1 (do not edit; see tools/genproto.py)."""\n')
    return sorted(p.relative_to(out) for p in (out / PACKAGE_DIR).iterdir() if p.is_file())


def _normalise(text: str) -> list[str]:
    # Version stamps differ between grpcio-tools releases without changing the wire contract.
    skip = ("# Protobuf Python Version", "GRPC_GENERATED_VERSION =", "_runtime_version.ValidateProtobufRuntimeVersion")
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if any(s in line for s in skip):
            if line.rstrip().endswith("("):
                while i < len(lines) and not lines[i].strip().startswith(")"):
                    i += 1
            i += 1
            continue
        out.append(line)
        i += 1
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the checked-in code differs")
    ns = parser.parse_args()
    if not ns.check:
        generate(ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = False
        for rel in fresh:
            new = _normalise((Path(tmp) / rel).read_text())
            path = ROOT / rel
            old = _normalise(path.read_text()) if path.exists() else []
            if new != old:
                stale = True
                sys.stdout.writelines(
                    line + "\n" for line in difflib.unified_diff(old, new, str(rel), f"{rel} (fresh)", lineterm="")
                )
        existing = {p.relative_to(ROOT) for p in (ROOT / PACKAGE_DIR).glob("*_pb2*.py*")}
        for extra in sorted(existing - set(fresh)):
            stale = True
            print(f"{extra}: no longer produced by protos/")
    if stale:
        print("generated code is stale: run `python tools/genproto.py`", file=sys.stderr)
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
