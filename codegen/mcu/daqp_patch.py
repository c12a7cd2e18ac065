"""DAQP's sources for the linear MCU solver, patched at copy time to use a precomputed Gram matrix.

For a linear MPC the LDP's constraint matrix M is constant, so ``M Mᵀ`` can be
computed offline (float64, then rounded once).  The patch adds one workspace
field, ``gram`` (row-major ``(m−ms)×(m−ms)``; NULL keeps DAQP's own behaviour),
and uses it where DAQP forms products of M:

* ``daqp_update_LDL_add``: the new row of ``M_W M_Wᵀ`` (and its diagonal) is read
  from ``gram`` instead of n-long dot products.
* Without simple bounds (``ms = 0``) the primal ``u = −M_Wᵀ λ*`` is not formed in
  every iteration.  ``daqp_compute_primal_and_fval`` (only called for the CSP λ* of a
  nonsingular working set) gets ``‖u‖² = λ*ᵀ M_W M_Wᵀ λ* = λ*ᵀ rhs − Σ ρ_free λ*²``
  from the CSP equations: O(|W|) instead of |W|·n products.  ``daqp_compute_Mu``
  gets ``M u = −gram[:, W] λ*``: m·|W| products, or (m−|W|)·|W| for the inactive
  rows only when many rows are active, instead of m·n.  ``daqp_refine_active``, the
  only other reader of u, forms it first.  Every caller of ``daqp_add_infeasible``
  (the only user of ``Mu``) has ``u = −M_Wᵀ λ*``: after
  ``daqp_compute_primal_and_fval``, after ``daqp_refine_active`` (which updates both),
  and after dropping a singular last constraint (``λ*`` is then the CSP again).  The
  caller recovers what it needs of u from ``WS`` and ``lam_star`` after the solve;
  ``work->u`` is stale.
* The feasibility scan of ``daqp_add_infeasible`` is prefiltered (a row can only be
  added if ``Mu`` lies outside ``[dlower, dupper]``), with the arrays in registers.
* ``daqp_add_constraint_keep_slack`` (static in DAQP) is made external, so that the solver
  can build its shifted warm-start working set with each row's slack state and multiplier.
* The hot products (``Mu``, the forward substitutions of ``daqp_compute_CSP`` and
  ``daqp_update_LDL_add``, ``daqp_solve_Lt``) use explicit fused multiply-adds
  (``fmaf``): one VFMA instruction on a Cortex-M4F (``-std=c99`` turns implicit
  contraction off), and the same correctly rounded result in host builds, so a host
  build still reproduces the MCU's answers bit for bit.

The iterations themselves (which constraint is added or removed) are DAQP's.  The
originals in ``build/third_party/daqp`` are never modified; each replacement must match
exactly once, or :class:`DaqpPatchError` is raised (a new DAQP version needs the patch
reviewed).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rlmpc.codegen.mcu.daqp_sources import LICENSE_NAME, SOLVER_HEADERS, SOLVER_SOURCES, daqp_sources

PATCH_NOTE = "/* rlmpc: patched at copy time by rlmpc.codegen.mcu.daqp_patch (precomputed M M'). */\n"

_FMA = """\
// Fused multiply-adds, explicit (-std=c99 turns contraction off): one VFMA on a Cortex-M4F,
// and the same correctly rounded result from fmaf on an x86 host that checks it; a plain
// multiply-add where fmaf would be a slow library call (e.g. a Cortex-M3)
#include <math.h>
#ifdef DAQP_SINGLE_PRECISION
#if defined(__FP_FAST_FMAF) || defined(__x86_64__) || defined(__i386__)
#define RLMPC_FMA(a,b,c) fmaf(a,b,c)
#endif
#elif defined(__FP_FAST_FMA) || defined(__x86_64__) || defined(__i386__)
#define RLMPC_FMA(a,b,c) fma(a,b,c)
#endif
#ifndef RLMPC_FMA
#define RLMPC_FMA(a,b,c) ((a)*(b)+(c))
#endif
"""


class DaqpPatchError(RuntimeError):
    """A patched passage of DAQP was not found exactly once."""


_TYPES = [(
    "    int state;\n}DAQPWorkspace;",
    "    int state;\n"
    "    // rlmpc patch: M*M' of the general rows, row-major (m-ms)x(m-ms); NULL if not given\n"
    "    const c_float *gram;\n"

    "}DAQPWorkspace;",
)]

_AUXILIARY_H = [(
    "void daqp_add_constraint(DAQPWorkspace *work, const int add_ind, c_float lam);\n",
    "void daqp_add_constraint(DAQPWorkspace *work, const int add_ind, c_float lam);\n"
    "// rlmpc patch: external (the solver's shifted warm start adds rows with their slack state)\n"
    "void daqp_add_constraint_keep_slack(DAQPWorkspace *work, const int add_ind, c_float lam);\n",
)]

_FACTORIZATION = [
    (
        "#include \"factorization.h\"\n",
        "#include \"factorization.h\"\n" + _FMA,
    ),
    (
        "        for(j=0; j<i; j++)\n            sum -= work->L[disp++]*work->L[new_L_start+j];\n",
        "        for(j=0; j<i; j++)\n"
        "            sum = RLMPC_FMA(-work->L[disp++],work->L[new_L_start+j],sum);\n",
    ),
    (
        "    if(Mi==NULL) sum = 1;\n    else\n"
        "        sum = dot_row(Mi+start_col,Mi+start_col,work->n-start_col);",
        "    const int rlmpc_mg = work->m-work->ms;\n"
        "    const c_float *rlmpc_gi = (work->gram != NULL && add_ind >= work->ms)\n"
        "        ? work->gram+(add_ind-work->ms)*rlmpc_mg : NULL;\n"
        "    if(rlmpc_gi != NULL) sum = rlmpc_gi[add_ind-work->ms];\n"
        "    else if(Mi==NULL) sum = 1;\n    else\n"
        "        sum = dot_row(Mi+start_col,Mi+start_col,work->n-start_col);",
    ),
    (
        "        // Multiply Mk*Mi (NULL signify unity)\n        if(Mk == NULL)",
        "        // Multiply Mk*Mi (NULL signify unity)\n"
        "        if(rlmpc_gi != NULL && id >= work->ms)\n"
        "            sum = rlmpc_gi[id-work->ms];\n"
        "        else if(Mk == NULL)",
    ),
]

_GRAM_HELPERS = _FMA + """\
// rlmpc patch: with a Gram matrix (and no simple bounds), u = -M_W'*lam_star is only
// formed where it is read (daqp_refine_active); fval and M*u come from the Gram matrix
#define RLMPC_GRAM_ONLY(work) ((work)->gram != NULL && (work)->ms == 0)
static void rlmpc_form_u(DAQPWorkspace *work){
    int i, j;
    for(j = 0; j < work->n; j++) work->u[j] = 0;
    for(i = 0; i < work->n_active; i++){
        const c_float li = work->lam_star[i];
        const c_float *mi = work->M+work->n*work->WS[i];
        for(j = 0; j < work->n; j++) work->u[j] -= mi[j]*li;
    }
}

"""

_AUXILIARY = [
    (
        "static void daqp_add_constraint_keep_slack(DAQPWorkspace *work,\n",
        "void daqp_add_constraint_keep_slack(DAQPWorkspace *work,\n",
    ),
    (
        "void daqp_compute_primal_and_fval(DAQPWorkspace *work){\n"
        "    int i,j,disp,id;\n    c_float fval=0;\n    const int has_l1 = DAQP_HAS_L1(work);\n",
        _GRAM_HELPERS
        + "void daqp_compute_primal_and_fval(DAQPWorkspace *work){\n"
        "    int i,j,disp,id;\n    c_float fval=0;\n    const int has_l1 = DAQP_HAS_L1(work);\n"
        "    if(RLMPC_GRAM_ONLY(work)){\n"
        "        // Only called for the CSP lam_star of a nonsingular working set, which solves\n"
        "        // (M_W M_W' + diag(rho_free)) lam_star = rhs (daqp_compute_CSP), so\n"
        "        // |u|^2 = lam_star' M_W M_W' lam_star = lam_star'rhs - sum rho_free lam_star^2\n"
        "        for(i = 0; i < work->n_active; i++){\n"
        "            id = work->WS[i];\n"
        "            const c_float li = work->lam_star[i];\n"
        "            c_float rhs = DAQP_IS_LOWER(id) ? -work->dlower[id] : -work->dupper[id];\n"
        "            if(DAQP_IS_SOFT(id)){ // (daqp_soft_residual and daqp_soft_penalty, inlined)\n"
        "                const c_float rho = daqp_soft_rho(work,id);\n"
        "                const c_float w = has_l1 ? daqp_soft_w(work,id) : 0;\n"
        "                if(DAQP_IS_SLACK_FREE(id)){\n"
        "                    if(w != 0) rhs -= rho*(DAQP_IS_LOWER(id) ? w : -w);\n"
        "                    rhs -= rho*li;\n"
        "                }\n"
        "                if(!has_l1) fval += work->settings->rho_soft*li*li;\n"
        "                else if(w == 0) fval += rho*li*li;\n"
        "                else if(DAQP_IS_SLACK_FREE(id)) fval += rho*(li*li-w*w);\n"
        "                work->sense[id] &= ~DAQP_SLACK_SWITCHED;\n"
        "            }\n"
        "            fval += li*rhs;\n"
        "        }\n"
        "        work->fval = fval;\n"
        "        return;\n"
        "    }\n",
    ),
    (
        "void daqp_compute_Mu(DAQPWorkspace *work){\n    if(work->Mu == NULL) return;\n",
        "void daqp_compute_Mu(DAQPWorkspace *work){\n    if(work->Mu == NULL) return;\n"
        "    if(RLMPC_GRAM_ONLY(work)){ // rlmpc patch: M*u = -gram[:,W]*lam_star\n"
        "        const int mg = work->m, na = work->n_active;\n"
        "        c_float *mu = work->Mu;\n"
        "        const c_float *ls = work->lam_star;\n"
        "        int i = 0, r;\n"
        "        if(5*na > 2*mg){ // many active: only the inactive rows, by rows (gram is symmetric)\n"
        "            const int *ws = work->WS;\n"
        "            for(r = 0; r < mg; r++){\n"
        "                const c_float *g = work->gram+r*mg;\n"
        "                c_float s0 = 0, s1 = 0;\n"
        "                if(work->sense[r]&(DAQP_ACTIVE+DAQP_IMMUTABLE)) continue; // (not read)\n"
        "                for(i = 0; i+1 < na; i += 2){\n"
        "                    s0 = RLMPC_FMA(g[ws[i]],ls[i],s0);\n"
        "                    s1 = RLMPC_FMA(g[ws[i+1]],ls[i+1],s1);\n"
        "                }\n"
        "                if(i < na) s0 = RLMPC_FMA(g[ws[i]],ls[i],s0);\n"
        "                mu[r] = -(s0+s1);\n"
        "            }\n"
        "            return;\n"
        "        }\n"
        "        for(r = 0; r < mg; r++) mu[r] = 0;\n"
        "        for(; i+3 < na; i += 4){\n"
        "            const c_float *g0 = work->gram+work->WS[i]*mg, *g1 = work->gram+work->WS[i+1]*mg;\n"
        "            const c_float *g2 = work->gram+work->WS[i+2]*mg, *g3 = work->gram+work->WS[i+3]*mg;\n"
        "            const c_float l0 = -ls[i], l1 = -ls[i+1], l2 = -ls[i+2], l3 = -ls[i+3];\n"
        "            for(r = 0; r < mg; r++)\n"
        "                mu[r] = RLMPC_FMA(g3[r],l3,RLMPC_FMA(g2[r],l2,\n"
        "                        RLMPC_FMA(g1[r],l1,RLMPC_FMA(g0[r],l0,mu[r]))));\n"
        "        }\n"
        "        for(; i < na; i++){\n"
        "            const c_float *g0 = work->gram+work->WS[i]*mg;\n"
        "            const c_float l0 = -ls[i];\n"
        "            for(r = 0; r < mg; r++) mu[r] = RLMPC_FMA(g0[r],l0,mu[r]);\n"
        "        }\n"
        "        return;\n"
        "    }\n",
    ),
    (
        "    int isupper=0, add_ind=DAQP_EMPTY_IND;\n",
        "    int isupper=0, add_ind=DAQP_EMPTY_IND, isupper_cand=0;\n",
    ),
    (
        "    /* General two-sided constraints */\n    daqp_compute_Mu(work);\n",
        "    /* General two-sided constraints */\n    daqp_compute_Mu(work);\n"
        "    if(RLMPC_GRAM_ONLY(work)){\n"
        "        // rlmpc patch: the same scan, prefiltered: a row can only be added if it is\n"
        "        // violated (dupper-Mu < bound < 0 implies Mu > dupper; the same for dlower)\n"
        "        const int m = work->m;\n"
        "        const int *sense = work->sense;\n"
        "        const c_float *mu = work->Mu, *dut = work->dupper, *dlt = work->dlower;\n"
        "        const c_float *sc = work->scaling;\n"
        "        for(j = 0; j < m; j++){\n"
        "            Mu = mu[j];\n"
        "            if(Mu > dut[j]){\n"
        "                if(sense[j]&(DAQP_ACTIVE+DAQP_IMMUTABLE)) continue;\n"
        "                min_cand = dut[j]-Mu;\n"
        "                isupper_cand = 1;\n"
        "            }\n"
        "            else if(Mu < dlt[j]){\n"
        "                if(sense[j]&(DAQP_ACTIVE+DAQP_IMMUTABLE)) continue;\n"
        "                min_cand = Mu-dlt[j];\n"
        "                isupper_cand = 0;\n"
        "            }\n"
        "            else continue;\n"
        "            bound = (sc == NULL) ? ep : ep*sc[j];\n"
        "            if(bound > noise) bound = noise;\n"
        "            if(min_cand < min_val && min_cand < bound){\n"
        "                add_ind = j; isupper = isupper_cand; min_val = min_cand;\n"
        "            }\n"
        "        }\n"
        "        goto rlmpc_scanned;\n"
        "    }\n",
    ),
    (
        "    // No constraint is infeasible => return\n",
        "rlmpc_scanned:\n    // No constraint is infeasible => return\n",
    ),
    (
        "            const c_float a0 = x[j]-Li[j]*xi, a1 = x[j+1]-Li[j+1]*xi;\n"
        "            const c_float a2 = x[j+2]-Li[j+2]*xi, a3 = x[j+3]-Li[j+3]*xi;\n",
        "            const c_float a0 = RLMPC_FMA(-Li[j],xi,x[j]), a1 = RLMPC_FMA(-Li[j+1],xi,x[j+1]);\n"
        "            const c_float a2 = RLMPC_FMA(-Li[j+2],xi,x[j+2]), a3 = RLMPC_FMA(-Li[j+3],xi,x[j+3]);\n",
    ),
    (
        "        for(; j < i; j++) x[j] -= Li[j]*xi;\n",
        "        for(; j < i; j++) x[j] = RLMPC_FMA(-Li[j],xi,x[j]);\n",
    ),
    (
        "            sum -= daqp_soft_residual(work,id,0);\n        for(j=0; j<i; j++)\n"
        "            sum -= work->L[disp++]*work->xldl[j];\n",
        "            sum -= daqp_soft_residual(work,id,0);\n        for(j=0; j<i; j++)\n"
        "            sum = RLMPC_FMA(-work->L[disp++],work->xldl[j],sum);\n",
    ),
    (
        "void daqp_refine_active(DAQPWorkspace *work){\n    int i, j, disp, id;\n    c_float Mu, d;\n",
        "void daqp_refine_active(DAQPWorkspace *work){\n    int i, j, disp, id;\n    c_float Mu, d;\n"
        "    if(RLMPC_GRAM_ONLY(work)) rlmpc_form_u(work); // rlmpc patch: u is not kept\n",
    ),
]

PATCHES: dict[str, list[tuple[str, str]]] = {
    "include/types.h": _TYPES,
    "include/auxiliary.h": _AUXILIARY_H,
    "src/factorization.c": _FACTORIZATION,
    "src/auxiliary.c": _AUXILIARY,
}


def patch_text(name: str, text: str) -> str:
    """``text`` of DAQP file ``name`` (e.g. ``src/auxiliary.c``) with its patches applied."""
    patches = PATCHES.get(name)
    if not patches:
        return text
    for old, new in patches:
        count = text.count(old)
        if count != 1:
            raise DaqpPatchError(f"{name}: expected one occurrence of {old[:60]!r}…, found {count}")
        text = text.replace(old, new)
    return PATCH_NOTE + text


def copy_patched_daqp(out: Path) -> None:
    """Copy the DAQP sources of the solver, patched, with DAQP's licence, to ``out/daqp``."""
    src = daqp_sources()
    for sub, names in (("src", SOLVER_SOURCES), ("include", SOLVER_HEADERS)):
        (out / "daqp" / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            rel = f"{sub}/{name}"
            (out / "daqp" / rel).write_text(patch_text(rel, (src / rel).read_text()))
    shutil.copyfile(src / LICENSE_NAME, out / "daqp" / LICENSE_NAME)
