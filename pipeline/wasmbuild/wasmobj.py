"""Give a wasm relocatable object its own symbol namespace (objcopy --localize for wasm).

Linked as shared libraries, two extension modules may each define a global with
the same name (numpy's mtrand and _generator both compile distributions.c, with
different integer types). Linked statically into one python.wasm, only one
definition would win, and calls from the other module would trap on a signature
mismatch. So each module is partially linked into one object (`wasm-ld -r`) and
every global it defines is made local, except its init function. Weak symbols
stay global: they are C++ inline/template copies, identical by the ODR, and
wasm-ld deduplicates their COMDAT groups by name.

llvm-objcopy cannot change symbol bindings in wasm objects, so this edits the
`linking` section's symbol table in place: setting the LOCAL bit (0x2) touches
only the first byte of each flags LEB128 and never changes its length.

    python -m pipeline.wasmbuild.wasmobj OBJECT --keep SYMBOL ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import PipelineError, report_error

WASM_MAGIC = b"\0asm\x01\0\0\0"
SYMBOL_TABLE = 8
FLAG_WEAK, FLAG_LOCAL, FLAG_UNDEFINED, FLAG_EXPLICIT_NAME = 0x1, 0x2, 0x10, 0x40
KIND_FUNCTION, KIND_DATA, KIND_GLOBAL, KIND_SECTION, KIND_TAG, KIND_TABLE = range(6)


class Reader:
    def __init__(self, data: bytes | bytearray, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def u8(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1]

    def leb(self) -> int:
        result = shift = 0
        while True:
            byte = self.u8()
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    def name(self) -> str:
        size = self.leb()
        self.pos += size
        return bytes(self.data[self.pos - size:self.pos]).decode()


def find_symbol_table(data: bytes | bytearray) -> Reader:
    """A reader positioned at the symbol table's count, inside the `linking` section."""
    if data[:8] != WASM_MAGIC:
        raise PipelineError("not a wasm object")
    reader = Reader(data, 8)
    while reader.pos < len(data):
        section_id, size = reader.u8(), reader.leb()
        end = reader.pos + size
        if section_id == 0 and reader.name() == "linking":
            reader.leb()  # metadata version
            while reader.pos < end:
                kind, sub_size = reader.u8(), reader.leb()
                if kind == SYMBOL_TABLE:
                    return reader
                reader.pos += sub_size
        reader.pos = end
    raise PipelineError("no symbol table: not a relocatable wasm object")


def localize_globals(path: Path, keep: set[str]) -> list[str]:
    """Make every defined, non-weak global symbol local except `keep`; return their names."""
    data = bytearray(path.read_bytes())
    reader = find_symbol_table(data)
    localized = []
    for _ in range(reader.leb()):
        kind = reader.u8()
        flags_at = reader.pos
        flags = reader.leb()
        defined = not flags & FLAG_UNDEFINED
        name = ""
        if kind in (KIND_FUNCTION, KIND_GLOBAL, KIND_TAG, KIND_TABLE):
            reader.leb()  # index
            if defined or flags & FLAG_EXPLICIT_NAME:
                name = reader.name()
        elif kind == KIND_DATA:
            name = reader.name()
            if defined:
                reader.leb(), reader.leb(), reader.leb()  # segment, offset, size
        elif kind == KIND_SECTION:
            reader.leb()
            continue
        else:
            raise PipelineError(f"{path}: unknown symbol kind {kind}")
        # An exception tag stays global: a module-private tag would never catch what another
        # module throws (and throwing needs the one the C++ runtime's catch pads name).
        if defined and kind != KIND_TAG and not flags & (FLAG_LOCAL | FLAG_WEAK) and name not in keep:
            data[flags_at] |= FLAG_LOCAL
            localized.append(name)
    path.write_bytes(data)
    return localized


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.wasmbuild.wasmobj", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("object", type=Path)
    parser.add_argument("--keep", action="append", default=[], help="a symbol that stays global")
    args = parser.parse_args(argv)
    try:
        names = localize_globals(args.object, set(args.keep))
    except PipelineError as exc:
        return report_error(exc)
    print(f"{args.object}: {len(names)} symbols made local")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
