"""Generate Python code from protos/ into src/tinyim/pb (never hand-edited, never committed).

protoc writes `import im_protocol_pb2` for proto imports; we rewrite that to a package import so the
generated modules live inside `tinyim.pb`.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "src" / "tinyim" / "pb"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    sources = sorted(str(p.name) for p in PROTOS.glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={OUT}",
        f"--pyi_out={OUT}",
        f"--grpc_python_out={OUT}",
        *sources,
    ]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)
        return 1
    stems = [Path(s).stem for s in sources]
    pattern = re.compile(r"^import (" + "|".join(f"{s}_pb2" for s in stems) + r")( as \w+)?$", re.M)
    for path in OUT.glob("*.py*"):
        text = path.read_text()
        fixed = pattern.sub(r"from tinyim.pb import \1\2", text)
        if fixed != text:
            path.write_text(fixed)
    (OUT / "__init__.py").write_text('"""Generated from protos/ by tools/genproto.py. Do not edit."""\n')
    _write_enums()
    return 0


def _write_enums() -> None:
    """Typed IntEnum twins of the client protocol's enums, so code and type checkers see every member."""
    sys.path.insert(0, str(ROOT / "src"))
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
