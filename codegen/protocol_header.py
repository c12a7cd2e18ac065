"""Generate the C header ``rlmpc_protocol_gen.h`` from :mod:`rlmpc.codegen.protocol_spec`.

The header holds the protocol's constants, type ids, error codes, flag bits and, per message,
the fixed part's length, field offsets, a struct and static inline pack/unpack functions
(little-endian, byte by byte: no alignment or endianness assumption, no libc).  It goes into a
build folder, never into the repository::

    python -m rlmpc.codegen.protocol_header build/protocol          # write (if changed)
    python -m rlmpc.codegen.protocol_header build/protocol --check  # exit 1 if missing or stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlmpc.codegen import protocol_spec as ps

HEADER_NAME = "rlmpc_protocol_gen.h"
C_SOURCES_DIR = Path(__file__).resolve().parents[1] / "firmware_templates" / "protocol"
_C_TYPES = {kind: ctype for kind, (_, _, ctype) in ps.INT_KINDS.items()}

_HELPERS = """\
/* little-endian access, byte by byte (any alignment, any host byte order) */
static inline void rlmpc_put_u8(uint8_t *b, uint8_t v) { b[0] = v; }
static inline void rlmpc_put_u16(uint8_t *b, uint16_t v)
{
    b[0] = (uint8_t)(v & 0xFFu);
    b[1] = (uint8_t)(v >> 8);
}
static inline void rlmpc_put_u32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v & 0xFFu);
    b[1] = (uint8_t)((v >> 8) & 0xFFu);
    b[2] = (uint8_t)((v >> 16) & 0xFFu);
    b[3] = (uint8_t)(v >> 24);
}
static inline void rlmpc_put_i16(uint8_t *b, int16_t v) { rlmpc_put_u16(b, (uint16_t)v); }
static inline void rlmpc_put_i32(uint8_t *b, int32_t v) { rlmpc_put_u32(b, (uint32_t)v); }
static inline void rlmpc_put_bytes(uint8_t *b, const uint8_t *src, uint16_t n)
{
    uint16_t i;
    for (i = 0; i < n; ++i) b[i] = src[i];
}
static inline uint8_t rlmpc_get_u8(const uint8_t *b) { return b[0]; }
static inline uint16_t rlmpc_get_u16(const uint8_t *b) { return (uint16_t)(b[0] | (b[1] << 8)); }
static inline uint32_t rlmpc_get_u32(const uint8_t *b)
{
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}
static inline int16_t rlmpc_get_i16(const uint8_t *b)
{
    uint16_t u = rlmpc_get_u16(b);
    return (int16_t)((int32_t)u - ((u & 0x8000u) ? (int32_t)0x10000L : 0));
}
static inline int32_t rlmpc_get_i32(const uint8_t *b)
{
    uint32_t u = rlmpc_get_u32(b);
    return (int32_t)((int64_t)u - ((u & 0x80000000u) ? (int64_t)0x100000000LL : 0));
}
static inline void rlmpc_get_bytes(const uint8_t *b, uint8_t *dst, uint16_t n)
{
    uint16_t i;
    for (i = 0; i < n; ++i) dst[i] = b[i];
}
"""


def _c_comment(text: str) -> str:
    return "/* " + text.replace("*/", "* /").replace("θ", "theta") + " */"


def _defines(prefix: str, items: list[tuple[str, int, str]], width: int = 0) -> list[str]:
    lines = []
    for name, value, doc in items:
        number = f"0x{value:0{width}X}u" if width else f"{value}u"
        lines.append(f"#define {prefix}{name} {number} {_c_comment(doc)}")
    return lines


def _message_block(spec: ps.MessageSpec) -> list[str]:
    up, low = spec.name, spec.name.lower()
    tail = ", ".join([*(f"{a.name}[{a.count}]" for a in spec.arrays), *([f"{spec.tail}[]"] if spec.tail else [])])
    reply = f"; reply: {spec.reply}" if spec.reply else ""
    lines = ["", _c_comment(f"{up} (0x{spec.type:02X}, {spec.direction}): {spec.doc}{reply}"),
             _c_comment(f"payload: fixed part ({spec.fixed_len} bytes)" + (f", then {tail}" if tail else "")),
             f"#define RLMPC_{up}_FIXED_LEN {spec.fixed_len}u",
             f"#define RLMPC_{up}_MAX_LEN {spec.max_len}u"]
    if not spec.fields:
        return lines
    offset = 0
    for f in spec.fields:
        lines.append(f"#define RLMPC_{up}_OFF_{f.name.upper()} {offset}u")
        offset += f.size
    lines.append("typedef struct {")
    for f in spec.fields:
        decl = f"uint8_t {f.name}[{f.length}]" if f.kind == "bytes" else f"{_C_TYPES[f.kind]} {f.name}"
        lines.append(f"    {decl}; {_c_comment(f.doc)}")
    lines.append(f"}} rlmpc_msg_{low};")
    pack, unpack = [], []
    offset = 0
    for f in spec.fields:
        if f.kind == "bytes":
            pack.append(f"    rlmpc_put_bytes(buf + {offset}, m->{f.name}, {f.length}u);")
            unpack.append(f"    rlmpc_get_bytes(buf + {offset}, m->{f.name}, {f.length}u);")
        else:
            pack.append(f"    rlmpc_put_{f.kind}(buf + {offset}, m->{f.name});")
            unpack.append(f"    m->{f.name} = rlmpc_get_{f.kind}(buf + {offset});")
        offset += f.size
    lines += [f"/* write the fixed part to buf[0 .. RLMPC_{up}_FIXED_LEN) */",
              f"static inline void rlmpc_pack_{low}(uint8_t *buf, const rlmpc_msg_{low} *m)", "{",
              *pack, "}",
              f"static inline void rlmpc_unpack_{low}(const uint8_t *buf, rlmpc_msg_{low} *m)", "{",
              *unpack, "}"]
    return lines


def _switch(name: str, ret: str, cases: list[tuple[int, str]], default: str, doc: str) -> list[str]:
    lines = [_c_comment(doc), f"static inline {ret} {name}(uint8_t v)", "{", "    switch (v) {"]
    lines += [f"    case 0x{value:02X}u: return {result};" for value, result in cases]
    lines += [f"    default: return {default};", "    }", "}"]
    return lines


def render() -> str:
    """The header's text (deterministic: no date, no path)."""
    msgs = ps.MESSAGES
    out = [
        "/* rlmpc serial protocol: generated by rlmpc.codegen.protocol_header from codegen/protocol_spec.py,",
        " * do not edit.  See docs/protocol.md. */",
        "#ifndef RLMPC_PROTOCOL_GEN_H", "#define RLMPC_PROTOCOL_GEN_H", "", "#include <stdint.h>", "",
        "/* frame: sync0 sync1 type seq len_lo len_hi payload[len] crc_lo crc_hi; the CRC "
        f"({ps.CRC_NAME}) covers type .. payload */",
        *_defines("RLMPC_PROTO_", [
            ("VERSION", ps.PROTOCOL_VERSION, "protocol version (HELLO, INFO)"),
            ("HEADER_LEN", ps.HEADER_LEN, "bytes before the payload"),
            ("CRC_LEN", ps.CRC_LEN, "bytes after the payload"),
            ("MAX_PAYLOAD", ps.MAX_PAYLOAD, "largest payload"),
            ("MAX_FRAME", ps.MAX_FRAME, "largest frame"),
            ("HASH_LEN", ps.HASH_LEN, "bytes of a hash (SHA-256 prefix)"),
            ("BOARD_LEN", ps.BOARD_LEN, "bytes of INFO.board"),
        ]),
        *_defines("RLMPC_PROTO_", [
            ("SYNC0", ps.SYNC[0], "first byte of every frame"),
            ("SYNC1", ps.SYNC[1], "second byte of every frame"),
            ("CRC_POLY", ps.CRC_POLY, "CRC polynomial (not reflected)"),
            ("CRC_INIT", ps.CRC_INIT, "CRC initial value (no final XOR)"),
        ], 2),
        "", "/* message type ids */",
        *_defines("RLMPC_MSG_", [(m.name, m.type, f"{m.direction}: {m.doc}") for m in msgs], 2),
        "", "/* error codes (ERROR.code) */",
        *_defines("RLMPC_ERR_", [(e.name, e.value, ps.ERROR_DOCS[e]) for e in ps.ErrorCode]),
        "", "/* ACTION.flags bits */",
        *_defines("RLMPC_STATUS_", [(str(s.name), s.value, ps.STATUS_DOCS[s]) for s in ps.StatusFlag], 4),
        "", "/* INFO.capabilities bits */",
        *_defines("RLMPC_CAP_", [(str(c.name), c.value, ps.CAPABILITY_DOCS[c]) for c in ps.Capability], 2),
        "", "/* INFO.precision: bytes per real */",
        *_defines("RLMPC_PRECISION_", [(p.name, p.value, f"{p.name.lower()}") for p in ps.Precision]),
        "", "/* INFO.cost_unit */",
        *_defines("RLMPC_COST_", [(c.name, c.value, c.name.lower()) for c in ps.CostUnit]),
        "", _HELPERS.rstrip("\n"),
    ]
    for spec in msgs:
        out += _message_block(spec)
    out += [
        "", *_switch("rlmpc_msg_known", "int", [(m.type, "1") for m in msgs], "0",
                     "1 if v is a message type id, else 0"),
        *_switch("rlmpc_msg_min_len", "uint16_t", [(m.type, f"{m.min_len}u") for m in msgs], "0u",
                 "smallest payload of type v (0 if unknown)"),
        *_switch("rlmpc_msg_max_len", "uint16_t", [(m.type, f"{m.max_len}u") for m in msgs], "0u",
                 "largest payload of type v (0 if unknown)"),
        *_switch("rlmpc_msg_to_device", "int",
                 [(m.type, "1" if m.direction == "host->device" else "0") for m in msgs], "0",
                 "1 if type v is sent by the host to the device, else 0"),
        *_switch("rlmpc_msg_name", "const char *", [(m.type, f'"{m.name}"') for m in msgs], '"?"',
                 "name of type v"),
        *_switch("rlmpc_error_name", "const char *", [(e.value, f'"{e.name}"') for e in ps.ErrorCode],
                 '"?"', "name of error code v"),
        "", "#endif /* RLMPC_PROTOCOL_GEN_H */", "",
    ]
    return "\n".join(out)


def generate(out_dir: Path) -> Path:
    """Write ``out_dir/rlmpc_protocol_gen.h`` unless it is already current; return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / HEADER_NAME
    text = render()
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def is_current(path: Path) -> bool:
    """True if ``path`` holds exactly what :func:`render` gives now."""
    return path.is_file() and path.read_text(encoding="utf-8") == render()


def c_sources() -> list[Path]:
    """The hand-written C sources that use the header (``rlmpc_protocol.c``)."""
    return [C_SOURCES_DIR / "rlmpc_protocol.c"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlmpc.codegen.protocol_header",
                                     description="Generate the protocol's C header.")
    parser.add_argument("out_dir", type=Path, help="build folder for rlmpc_protocol_gen.h")
    parser.add_argument("--check", action="store_true", help="only check that the header is current")
    args = parser.parse_args(argv)
    if args.check:
        path = args.out_dir / HEADER_NAME
        if not is_current(path):
            print(f"{path}: missing or stale; regenerate with python -m rlmpc.codegen.protocol_header {args.out_dir}",
                  file=sys.stderr)
            return 1
        return 0
    print(generate(args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
