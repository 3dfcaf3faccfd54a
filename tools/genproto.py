"""Generate Python code and typed stubs from protos/ into src/tinyim/pb (never hand-edited, never committed).

protoc names a generated module after the proto's import path, so the protos are mounted at the virtual
path `tinyim/pb/` (`-Itinyim/pb=protos`, protoc's `virtual=disk` proto path) and generated into `src/`:
`import "tinyim/pb/im_protocol.proto"` becomes `from tinyim.pb import im_protocol_pb2`, with no rewriting.
mypy-protobuf writes the `.pyi` stubs: typed messages (`--mypy_out`) and typed gRPC stubs and servicers
(`--mypy_grpc_out`, with an async stub class for `grpc.aio` channels).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
SRC = ROOT / "src"
PACKAGE = "tinyim/pb"
OUT = SRC / PACKAGE
BIN = Path(sys.executable).parent  # protoc-gen-mypy and protoc-gen-mypy_grpc come with mypy-protobuf


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for stale in [*OUT.glob("*_pb2*.py"), *OUT.glob("*_pb2*.pyi")]:
        stale.unlink()
    sources = sorted(f"{PACKAGE}/{p.name}" for p in PROTOS.glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PACKAGE}={PROTOS}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={BIN / 'protoc-gen-mypy_grpc'}",
        f"--python_out={SRC}",
        f"--grpc_python_out={SRC}",
        f"--mypy_out=quiet:{SRC}",
        f"--mypy_grpc_out=quiet:{SRC}",
        *sources,
    ]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)
        return 1
    (OUT / "__init__.py").write_text('"""Generated from protos/ by tools/genproto.py. Do not edit."""\n')
    _write_enums()
    return 0


def _write_enums() -> None:
    """Typed IntEnum twins of the client protocol's enums, so code and type checkers see every member."""
    sys.path.insert(0, str(SRC))
    module = importlib.import_module("tinyim.pb.im_protocol_pb2")
    header = '"""Generated from protos/im_protocol.proto by tools/genproto.py. Do not edit."""'
    lines = [header, "", "import enum", ""]
    for name in ("Cmd", "ErrorCode", "MsgType"):
        descriptor = module.DESCRIPTOR.enum_types_by_name[name]
        lines += ["", f"class {name}(enum.IntEnum):"]
        for value in descriptor.values:
            if name == "Cmd" and value.number == 0:
                continue
            number = f"{value.number:#06x}" if name == "Cmd" else str(value.number)
            lines.append(f"    {value.name} = {number}")
        lines.append("")
    (OUT / "enums.py").write_text("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
