"""CasADi-generated C of the stage models that a real-time iteration evaluates on the MCU.

Three functions at fixed θ and p (all outputs dense; matrices transposed so that
the C code reads them row-major)::

    rlmpc_stage(x, u, γ^k)      -> F, Aᵀ, Bᵀ, W, ∇cost, h, Jhᵀ     (stages 0..N-1)
    rlmpc_stage_cost(x, u, γ^k) -> W, ∇cost                      (a repeated Riccati pass)
    rlmpc_terminal(x)           -> W_N, ∇ℓ_N, h_N, Jh_Nᵀ           (stage N)

with F the discrete dynamics, A, B its Jacobians, W and ∇cost the Hessian and
gradient of γ^k ℓ + ℓ_u in z = (x, u) (the Gauss-Newton model of acados'
external cost: the cost's own Hessian, no constraint curvature), h = (h_state,
h_path) and Jh its Jacobian.  For float32 the double math calls are mapped to
their float versions (compile with ``-fsingle-precision-constant``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import casadi as cs

from rlmpc.toolkit.parameters import ParameterValues
from rlmpc.toolkit.problem import ProblemFunctions, fix_theta

MATH = ("sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "exp",
        "log", "log10", "sqrt", "pow", "fabs", "floor", "ceil", "fmod", "fmin", "fmax", "erf")
_MATH_CALL = re.compile(r"\b(" + "|".join(MATH) + r")\(")
STAGE, STAGE_COST, TERMINAL = "rlmpc_stage", "rlmpc_stage_cost", "rlmpc_terminal"


# CasADi's generated functions do not use all of their (iw, w, mem) arguments
PROLOGUE = ("/* CasADi-generated stage models of the rlmpc RTI solver (rlmpc.codegen.mcu.casadi_functions) */\n"
            "#ifdef __GNUC__\n#pragma GCC diagnostic ignored \"-Wunused-parameter\"\n#endif\n"
            "#if defined(__GNUC__) && !defined(__clang__)\n"
            "#pragma GCC optimize (\"fp-contract=fast\") /* fused multiply-adds under -std=c99 */\n"
            "#endif\n")


# float32: sine and cosine of |x| <= pi/4 (the pole near upright) by the polynomials of
# fdlibm's float kernels, inlined so that a sine and a cosine of the same angle share x^2
# and the calls (about 40 instructions each on a Cortex-M4) are left to larger angles;
# absolute error <= 7.3e-8 on [-pi/4, pi/4] (the library's own: 3.7e-8)
_TRIG_CALL = re.compile(r"\b(sin|cos)f\(")
FAST_TRIG = """#include <math.h>
static inline float rlmpc_sinf(float x) {
  float z = x * x;
  if (!(x < 0.785398163f && x > -0.785398163f)) return sinf(x);
  return x + x * z * (-1.6666667163e-01f + z * (8.3333337680e-03f + z * (-1.9841270114e-04f
         + z * (2.7557314297e-06f + z * (-2.5050759689e-08f + z * 1.5896910177e-10f)))));
}
static inline float rlmpc_cosf(float x) {
  float z = x * x;
  if (!(x < 0.785398163f && x > -0.785398163f)) return cosf(x);
  return 1.0f - 0.5f * z + z * z * (4.1666667908e-02f + z * (-1.3888889225e-03f
         + z * (2.4801587642e-05f + z * (-2.7557314297e-07f + z * (2.0875723372e-09f
         + z * -1.1359647598e-11f)))));
}
"""


@dataclass(frozen=True)
class StageFunctions:
    """The generated C file and the work sizes its callers must provide."""

    source: str
    sizes: dict[str, tuple[int, int, int, int]]  # name -> (sz_arg, sz_res, sz_iw, sz_w)


def stage_functions(fns: ProblemFunctions, theta: ParameterValues | None = None,
                    p: ParameterValues | None = None,
                    runtime: bool = False) -> tuple[cs.Function, cs.Function, cs.Function]:
    """The three CasADi functions at fixed θ and p (stage, stage cost, terminal); ``runtime``:
    θ and p are two more inputs of each (after γ^k, resp. x), for SET_THETA and STEP_PARAMS."""
    fixed = fix_theta(fns, fns.theta.flatten(theta)) if fns.ntheta and not runtime else fns
    pv = fns.params.sym() if runtime else cs.DM(fns.params.flatten(p, check_bounds=False))
    th = fns.theta.sym() if runtime else cs.SX(0, 1)
    extra = [th, pv] if runtime else []
    x, u = cs.SX.sym("x", fns.nx), cs.SX.sym("u", fns.nu)
    gk = cs.SX.sym("discount_k")
    z = cs.vertcat(x, u)
    f = fixed.dynamics(x, u, th, pv)
    cost = gk * fixed.stage_cost(x, u, th, pv) + fixed.stage_cost_undiscounted(x, u, th, pv)
    W, g = cs.hessian(cost, z)
    h = cs.vertcat(fixed.h_state(x, th, pv), fixed.h_path(x, u, th, pv))
    dense = cs.densify
    stage = cs.Function(STAGE, [x, u, gk, *extra], [dense(f), dense(cs.jacobian(f, x).T),
                                             dense(cs.jacobian(f, u).T), dense(W), dense(g),
                                             dense(h), dense(cs.jacobian(h, z).T)])
    stage_cost = cs.Function(STAGE_COST, [x, u, gk, *extra], [dense(W), dense(g)])
    costN = fixed.terminal_cost(x, th, pv)
    WN, gN = cs.hessian(costN, x)
    hN = fixed.h_state(x, th, pv)
    terminal = cs.Function(TERMINAL, [x, *extra], [dense(WN), dense(gN), dense(hN),
                                           dense(cs.jacobian(hN, x).T)])
    return stage, stage_cost, terminal


def cost_curvature_varies(fns: ProblemFunctions, theta: ParameterValues | None = None,
                          p: ParameterValues | None = None, runtime: bool = False) -> bool:
    """True if the Hessian W of a stage or the terminal cost depends on (x, u) (a cost that is not
    quadratic, e.g. the pendulum's 1 − cos: W can be indefinite away from the origin, and the RTI
    solver projects it, ``CONVEXIFY`` in ``rlmpc_rti.c``); False for quadratic costs (W fixed by θ, p)."""
    stage, _, terminal = stage_functions(fns, theta, p, runtime)
    x, u = cs.SX.sym("x", fns.nx), cs.SX.sym("u", fns.nu)
    extra = [cs.SX.sym("theta", fns.ntheta), cs.SX.sym("p", fns.np)] if runtime else []
    W = stage(x, u, cs.SX.sym("discount_k"), *extra)[3]
    WN = terminal(x, *extra)[0]
    return bool(cs.depends_on(W, cs.vertcat(x, u)) or cs.depends_on(WN, x))


def generate_stage_functions(fns: ProblemFunctions, theta: ParameterValues | None = None,
                             p: ParameterValues | None = None,
                             single: bool = True, runtime: bool = False) -> StageFunctions:
    """C source (file name ``rlmpc_model.c``) of :func:`stage_functions` and its work sizes."""
    functions = stage_functions(fns, theta, p, runtime)
    cg = cs.CodeGenerator("rlmpc_model", {"casadi_real": "float" if single else "double",
                                          "casadi_int": "int"})
    for fn in functions:
        cg.add(fn)
    source = cg.dump()
    if single:
        source = _MATH_CALL.sub(lambda m: m.group(1) + "f(", source)
        source = FAST_TRIG + _TRIG_CALL.sub(lambda m: "rlmpc_" + m.group(1) + "f(", source)
    source = PROLOGUE + source
    sizes = {fn.name(): (int(fn.sz_arg()), int(fn.sz_res()), int(fn.sz_iw()), int(fn.sz_w()))
             for fn in functions}
    return StageFunctions(source, sizes)
