"""Dense condensing of a linearised MPC around an LQR pre-stabilisation.

With u_k = −K x_k + v_k, the states and inputs are affine in (x_0, v) and the
MPC becomes the dense QP in v = (v_0, …, v_{N-1})::

    min_v  ½ vᵀ H v + (F x_0 + f)ᵀ v
    s.t.   lower − E x_0 ≤ G v ≤ upper − E x_0      (soft rows: slack penalties, per side,
                                                    w_lin·σ + ½ w_quad·σ²)

Input bounds become general rows of G.  Rows that are the same affine function of
(x_0, v) with complementary one-sided bounds (e.g. ``x ≥ lb`` and ``x ≤ ub`` declared
as two constraints) are merged into one two-sided row with per-side penalties: an
active-set solver must not hold both sides of the same row in its working set.

K comes from the discrete algebraic Riccati equation of the stage-0 linearisation
with the problem's own cost Hessians, which keeps cond(H) small for open-loop
unstable plants (plain
condensing of the cart-pole gives cond(H) ≈ 4e6; see the MCU notes).
``python -m rlmpc.codegen.mcu.condense`` prints cond(H) of the reference problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlmpc.codegen.mcu.fallback import prestabilising_gain
from rlmpc.codegen.mcu.linearise import LinearisedOcp, StageRows
from rlmpc.toolkit.parameters import FloatArray

# rows of G whose norm is below this (relative to the largest) do not depend on v:
# they constrain x_0 alone, which the controller cannot change
ZERO_ROW_TOL = 1e-12


@dataclass(frozen=True)
class CondensedQP:
    """The dense QP in v of one MPC (see the module docstring)."""

    name: str
    nx: int
    nu: int
    horizon: int
    K: FloatArray  # (nu, nx): u_0 = −K x_0 + v_0
    H: FloatArray  # (nz, nz)
    F: FloatArray  # (nz, nx)
    f: FloatArray  # (nz,)
    G: FloatArray  # (m, nz)
    E: FloatArray  # (m, nx)
    lower: FloatArray  # (m,), may hold −inf
    upper: FloatArray  # (m,), may hold +inf
    soft: np.ndarray  # (m,) bool
    w_lin: FloatArray  # (m, 2) discounted linear slack penalty of the lower, upper side
    w_quad: FloatArray  # (m, 2) discounted quadratic slack penalty of the lower, upper side
    labels: tuple[str, ...]
    # per row: the raw row (in condensing order) of its coefficients, of its lower and of its upper
    # bound (-1: open side); raw rows are per stage k < N the finite input bounds then the stage's
    # rows (stage 0: path rows only), then the terminal state rows
    sources: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=int))
    n_raw: int = 0

    @property
    def nz(self) -> int:
        return int(self.H.shape[0])

    @property
    def m(self) -> int:
        return int(self.G.shape[0])

    @property
    def cond_h(self) -> float:
        return float(np.linalg.cond(self.H))

    def earlier_rows(self) -> np.ndarray:
        """For each row, the row of the same constraint one stage earlier (−1 if there is none).

        Rows are identified by their labels (``name@stage``, merged rows ``a@k|b@k``); the
        shifted warm start of the MCU solver moves its working set along this map.
        """
        index: dict[tuple[tuple[str, ...], int], int] = {}
        keys: list[tuple[tuple[str, ...], int] | None] = []
        for row, label in enumerate(self.labels):
            key = _row_key(label)
            keys.append(key)
            if key is not None:
                index[key] = row
        return np.array([-1 if key is None else index.get((key[0], key[1] - 1), -1) for key in keys],
                        dtype=int)

    def u0(self, x0: FloatArray, v: FloatArray) -> FloatArray:
        """The first input of the plan v from state x0."""
        return np.asarray(-self.K @ x0 + v[: self.nu], dtype=float)


def _row_key(label: str) -> tuple[tuple[str, ...], int] | None:
    """(constraint names, stage) of a row label ``name@stage`` or ``a@k|b@k``; None if not of that form."""
    names, stages = [], set()
    for part in label.split("|"):
        name, sep, stage = part.rpartition("@")
        if not sep or not stage.isdigit():
            return None
        names.append(name)
        stages.add(int(stage))
    return (tuple(names), stages.pop()) if len(stages) == 1 else None


def lqr_gain(ocp: LinearisedOcp) -> FloatArray:
    """K = (R + BᵀPB)⁻¹(BᵀPA + Sᵀ) of the stage-0 model with the stage-0 cost Hessian; zero
    (plain condensing) if that model is not stabilisable (any K condenses exactly)."""
    s0 = ocp.stages[0]
    return prestabilising_gain(s0.A, s0.B, s0.W)


def condense(ocp: LinearisedOcp, K: FloatArray | None = None) -> CondensedQP:
    """Condense the stages into the dense QP in v (K: pre-stabilising gain, default LQR)."""
    nx, nu, N = ocp.nx, ocp.nu, ocp.horizon
    gain = lqr_gain(ocp) if K is None else np.asarray(K, dtype=float)
    nw = nx + N * nu  # w = (x_0, v): every x_k, u_k is T w + t
    Tx, tx = np.hstack([np.eye(nx), np.zeros((nx, N * nu))]), np.zeros(nx)
    Hw, gw = np.zeros((nw, nw)), np.zeros(nw)
    rows_G: list[FloatArray] = []
    rows_b: list[tuple[FloatArray, FloatArray]] = []
    meta: list[StageRows] = []
    for k, st in enumerate(ocp.stages):
        if k < N:
            Tu = -gain @ Tx
            Tu[:, nx + k * nu: nx + (k + 1) * nu] += np.eye(nu)
            tu = -gain @ tx
            Tz, tz = np.vstack([Tx, Tu]), np.concatenate([tx, tu])
            # input bounds as general rows
            finite = np.isfinite(ocp.u_lb) | np.isfinite(ocp.u_ub)
            rows_G.append(Tu[finite])
            rows_b.append(((ocp.u_lb - tu)[finite], (ocp.u_ub - tu)[finite]))
            meta.append(_input_rows(ocp, k, finite))
        else:
            Tz, tz = Tx, tx
        Hw += Tz.T @ st.W @ Tz
        gw += Tz.T @ (st.W @ tz + st.w)
        CD = np.hstack([st.rows.C, st.rows.D])
        rows_G.append(CD @ Tz)
        rows_b.append((st.rows.lower - CD @ tz, st.rows.upper - CD @ tz))
        meta.append(st.rows)
        if k < N:
            Tx, tx = st.A @ Tx + st.B @ Tu, st.A @ tx + st.B @ tu + st.c
    Gw = np.vstack(rows_G)
    lower = np.concatenate([b[0] for b in rows_b])
    upper = np.concatenate([b[1] for b in rows_b])
    soft = np.concatenate([r.soft for r in meta])
    w_lin = np.repeat(np.concatenate([r.w_lin for r in meta])[:, None], 2, axis=1)
    w_quad = np.repeat(np.concatenate([r.w_quad for r in meta])[:, None], 2, axis=1)
    labels = [lbl for r in meta for lbl in r.labels]
    lo_src = np.where(np.isfinite(lower), np.arange(lower.size), -1)
    up_src = np.where(np.isfinite(upper), np.arange(upper.size), -1)
    keep = _merge_one_sided(Gw, lower, upper, soft, w_lin, w_quad, labels, lo_src, up_src)
    norms = np.linalg.norm(Gw[keep, nx:], axis=1)
    keep = keep[(norms > ZERO_ROW_TOL * max(norms.max(initial=0.0), 1.0))
                & (np.isfinite(lower[keep]) | np.isfinite(upper[keep]))]
    H = Hw[nx:, nx:]
    return CondensedQP(
        name=ocp.name, nx=nx, nu=nu, horizon=N, K=gain, H=0.5 * (H + H.T), F=Hw[nx:, :nx],
        f=gw[nx:], G=Gw[keep, nx:], E=Gw[keep, :nx], lower=lower[keep], upper=upper[keep],
        soft=soft[keep], w_lin=w_lin[keep], w_quad=w_quad[keep],
        labels=tuple(labels[i] for i in keep),
        sources=np.column_stack([keep, lo_src[keep], up_src[keep]]).astype(int), n_raw=int(Gw.shape[0]))


def _merge_one_sided(Gw: FloatArray, lower: FloatArray, upper: FloatArray, soft: np.ndarray,
                     w_lin: FloatArray, w_quad: FloatArray, labels: list[str],
                     lo_src: np.ndarray, up_src: np.ndarray) -> np.ndarray:
    """Merge rows with identical coefficients and complementary sides (in place); rows to keep."""
    first: dict[bytes, int] = {}
    keep = []
    for i in range(Gw.shape[0]):
        key = Gw[i].tobytes()
        j = first.get(key)
        lo_i, up_i = bool(np.isfinite(lower[i])), bool(np.isfinite(upper[i]))
        if j is not None and soft[j] == soft[i] and lo_i != up_i \
                and (np.isfinite(lower[j]) != lo_i) and (np.isfinite(upper[j]) != up_i):
            side = 0 if lo_i else 1
            if side == 0:
                lower[j], lo_src[j] = lower[i], i
            else:
                upper[j], up_src[j] = upper[i], i
            w_lin[j, side], w_quad[j, side] = w_lin[i, side], w_quad[i, side]
            labels[j] = f"{labels[j]}|{labels[i]}"
            del first[key]  # both sides are now taken
            continue
        if key not in first:
            first[key] = i
        keep.append(i)
    return np.asarray(keep, dtype=int)


def _input_rows(ocp: LinearisedOcp, k: int, finite: np.ndarray) -> StageRows:
    n = int(finite.sum())
    return StageRows(C=np.zeros((n, ocp.nx)), D=np.zeros((n, ocp.nu)), lower=np.zeros(n),
                     upper=np.zeros(n), soft=np.zeros(n, dtype=bool), w_lin=np.zeros(n),
                     w_quad=np.zeros(n),
                     labels=tuple(f"u[{i}]@{k}" for i in np.where(finite)[0]))


def main() -> None:
    from rlmpc.codegen.mcu.linearise import linearise
    from rlmpc.toolkit.problems import lti_mpc
    from rlmpc.toolkit.problems.linear_cartpole import linear_cartpole_mpc

    for build in (lti_mpc, linear_cartpole_mpc):
        fns = build().build()
        qp = condense(linearise(fns))
        plain = condense(linearise(fns), K=np.zeros((fns.nu, fns.nx)))
        print(f"{fns.name}: nz={qp.nz} m={qp.m} cond(H)={qp.cond_h:.3g} "
              f"(plain condensing: {plain.cond_h:.3g})")


if __name__ == "__main__":
    main()
