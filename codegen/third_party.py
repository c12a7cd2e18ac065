"""Third-party files that ship inside the package: fetched once when the package is set up or its
wheel is built (``python -m rlmpc.codegen.third_party``), never when a command runs.

- ``third_party/daqp/<version>/``: DAQP's C sources and licence (the bare-metal solver's QP);
- ``third_party/acados-aarch64/``: the aarch64 build of the installed acados (headers, shared
  libraries, licences) for cross-compiling linux-aarch64 bundles.

Both are checked against pinned SHA-256 digests and are never committed to the repository.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "third_party"


class MissingThirdPartyError(RuntimeError):
    """A vendored third-party folder is not in this installation."""


def missing(what: str, folder: Path) -> MissingThirdPartyError:
    return MissingThirdPartyError(
        f"{what} is not in this installation ({folder}); a wheel of rlmpc carries it, a source checkout "
        "gets it from `make setup` (or `python -m rlmpc.codegen.third_party`, which needs the package index)")


def main() -> int:
    """Fetch every vendored folder that is missing and print where they are."""
    from rlmpc.codegen import aarch64_acados
    from rlmpc.codegen.mcu import daqp_sources

    try:
        print(daqp_sources.fetch_daqp_sources())
        print(aarch64_acados.fetch_aarch64_acados().root)
    except (RuntimeError, OSError) as exc:
        print(f"rlmpc.codegen.third_party: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
