#!/usr/bin/env bash
# Build the libFuzzer harness of the C protocol parser and run it for RUNS executions.
#
#   firmware_templates/protocol/fuzz/run_fuzz.sh [RUNS] [BUILD_DIR]
#
# RUNS defaults to 1000000, BUILD_DIR to build/fuzz (generated header, seeds, corpus, binary).
# Environment: CLANG (clang), PYTHON (.venv/bin/python), PRECISION (4 or 8), SEED (1),
# MAX_TOTAL_TIME (0: no limit).  Needs clang and its compiler-rt (libFuzzer; Debian libclang-rt-N-dev).
# Exit status: libFuzzer's (0: no crash); a crash leaves its input in BUILD_DIR.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
RUNS=${1:-1000000}
OUT=$(mkdir -p "${2:-$ROOT/build/fuzz}" && cd "${2:-$ROOT/build/fuzz}" && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
CC=${CLANG:-clang}
PRECISION=${PRECISION:-4}

command -v "$CC" >/dev/null || { echo "run_fuzz.sh: $CC not found (make setup installs clang and its libclang-rt-N-dev)" >&2; exit 2; }

# generated header and seed corpus: each message type, dims nx=4 np=2 ntheta=3, as a raw stream
# and as records (see fuzz_parser.c)
(cd "$ROOT" && "$PY" -m rlmpc.codegen.protocol_header "$OUT" >/dev/null)
mkdir -p "$OUT/seeds" "$OUT/corpus"
(cd "$ROOT" && "$PY" - "$OUT/seeds" "$PRECISION" <<'EOF'
import sys
from pathlib import Path

from rlmpc.codegen import protocol as p
from rlmpc.codegen.protocol_spec import HASH_LEN, Precision

out, prec = Path(sys.argv[1]), Precision(int(sys.argv[2]))
h = bytes(HASH_LEN)
messages = [p.Hello(), p.Step(7, [0.5, -1, 2, 3], [1, 2]), p.Step(8, [1, 2, 3, 4]),
            p.SetTheta(h, bytes(range(HASH_LEN)), [0.5, -0.5, 2.5]), p.SetTheta(h, h, [0.5, float("nan"), 9.0]),
            p.SetTheta(h, h, [0.5, -0.5]), p.SetTheta(b"\x01" * HASH_LEN, h, [0.0, 0.0, 0.0]),
            p.Step(9, [1, 2, 3, 4], [float("inf"), 0]), p.StepTheta(10, 0xA55A, [1, 2, 3, 4], [1, 2], [0.5, -0.5, 2.5]),
            p.StepTheta(11, 1, [1, 2, 3, 4], (), [0.5, float("nan"), 9.0]), p.StepTheta(12, 2, [1, 2, 3], (), [0, 0, 0]),
            p.StepTheta(13, 3, [1, 2, 3, 4], (), [0.5, -0.5]),
            p.StepThetaDelta(14, 0xA55A, 4, 3, [1, 2, 3, 4], (), p.theta_delta([0.5, -0.5, 2.5], [0.25, -0.5, 2.4])),
            p.StepThetaDelta(15, 4, 5, 3, [1, 2, 3, 4], [1, 2], p.theta_delta([0.25, -0.5, 2.4], [9.0, 0.0, -1.0])),
            p.StepThetaDelta(16, 5, 6, 3, [1, 2, 3, 4], (), b"\x80\x00\x01\x01"), p.Reset(), p.Ping(b"\xa5\x5a"),
            p.Exit(3), p.Ack(2), p.Error(1, 2, 3), p.Pong(b"x"), p.Action(1, 1, 0, 2, 9, 1234, [0.25]),
            p.Info(1, 0, 1, 0, int(prec), 7, 2, 4, 1, 2, 3, p.board_bytes("fuzz"), h, h, h)]
records = b""
for i, msg in enumerate(messages):
    (out / f"{i:02d}_{msg.TYPE.name}").write_bytes(b"\x04\x02\x03" + p.encode(msg, seq=i, precision=prec))
    payload = p.encode_payload(msg, prec)
    record = bytes([msg.TYPE, i]) + len(payload).to_bytes(2, "little") + payload
    (out / f"{i:02d}_{msg.TYPE.name}_record").write_bytes(b"\x04\x02\x83" + record)
    records += record
(out / "all").write_bytes(b"\x04\x02\x03" + b"".join(p.encode(m, i, prec) for i, m in enumerate(messages)))
(out / "all_records").write_bytes(b"\x04\x02\x83" + records)
EOF
)

"$CC" -g -O1 -std=c99 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -DRLMPC_PROTO_PRECISION="$PRECISION" -I"$OUT" -I"$HERE/.." \
  "$HERE/fuzz_parser.c" "$HERE/../rlmpc_protocol.c" -o "$OUT/fuzz_parser"

cd "$OUT"
exec ./fuzz_parser -runs="$RUNS" -seed="${SEED:-1}" -max_len=4096 -max_total_time="${MAX_TOTAL_TIME:-0}" \
  -print_final_stats=1 -artifact_prefix="$OUT/" corpus seeds
