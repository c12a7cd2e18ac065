"""Copy-time patch of DAQP for the RTI solver (:mod:`rlmpc.codegen.mcu.generate_rti` only).

The RTI solver's LDP rows are stage-structured: the row of a constraint at stage k
depends only on w_0..w_k, so its entries past ``(k+1)·nu`` are zero.  The patch adds
``int *row_nnz`` to the end of ``DAQPWorkspace`` (NULL: every row is dense, DAQP's own
behaviour) and stops the products with rows of M at that length: the dot products of
the LDL update, M·u of the feasibility scan, u = −M'λ and the refinements.  Applied to
the copy in a generated bundle (``daqp/``), never to the cached sources; every edit must
match exactly once, or the patch fails.
"""

from __future__ import annotations

from pathlib import Path

NNZ = "DAQP_ROW_NNZ"
_NNZ_MACRO = (f"// rlmpc RTI patch: length of the nonzero head of general row id of M\n"
              f"#define {NNZ}(work,id) ((work)->row_nnz != NULL ? "
              f"(work)->row_nnz[(id)-(work)->ms] : (work)->n)\n")

_FMA = ("// rlmpc RTI patch\n#if defined(__GNUC__) && !defined(__clang__)\n"
        "#pragma GCC optimize (\"fp-contract=fast\")\n#endif\n")

# (file, old, new): each old text must occur exactly once
EDITS: tuple[tuple[str, str, str], ...] = (
    ("include/types.h", "    int state;\n}DAQPWorkspace;\n",
     "    int state;\n    // rlmpc RTI patch: entries of general row i of M from row_nnz[i] on are zero\n"
     "    // (NULL: dense rows)\n    int *row_nnz;\n}DAQPWorkspace;\n" + _NNZ_MACRO),
    # u = -M'lam (unrolled by four, in the same order)
    ("src/auxiliary.c",
     "            for(j=0,disp=work->n*(id-work->ms);j<work->n;j++)\n"
     "                work->u[j]-=work->M[disp++]*li;",
     "            {\n"
     "                const c_float *Mi = work->M+work->n*(id-work->ms);\n"
     f"                const int nz = {NNZ}(work,id);\n"
     "                c_float *uu = work->u;\n"
     "                for(j=0;j+4<=nz;j+=4){\n"
     "                    uu[j]-=Mi[j]*li; uu[j+1]-=Mi[j+1]*li;\n"
     "                    uu[j+2]-=Mi[j+2]*li; uu[j+3]-=Mi[j+3]*li;\n"
     "                }\n"
     "                for(;j<nz;j++) uu[j]-=Mi[j]*li;\n"
     "            }"),
    # forward substitution of the CSP (unrolled by four, in the same order)
    ("src/auxiliary.c",
     "        for(j=0; j<i; j++)\n"
     "            sum -= work->L[disp++]*work->xldl[j];\n"
     "        disp++; //Skip 1 in L",
     "        {\n"
     "            const c_float *Lr = work->L+disp, *xl = work->xldl;\n"
     "            for(j=0; j+4<=i; j+=4)\n"
     "                sum = sum - Lr[j]*xl[j] - Lr[j+1]*xl[j+1] - Lr[j+2]*xl[j+2] - Lr[j+3]*xl[j+3];\n"
     "            for(; j<i; j++) sum -= Lr[j]*xl[j];\n"
     "            disp += i;\n"
     "        }\n"
     "        disp++; //Skip 1 in L"),
    # forward substitution of the LDL update (unrolled by four, in the same order)
    ("src/factorization.c",
     "        for(j=0; j<i; j++)\n"
     "            sum -= work->L[disp++]*work->L[new_L_start+j];\n",
     "        {\n"
     "            const c_float *Lr = work->L+disp, *ln = work->L+new_L_start;\n"
     "            for(j=0; j+4<=i; j+=4)\n"
     "                sum = sum - Lr[j]*ln[j] - Lr[j+1]*ln[j+1] - Lr[j+2]*ln[j+2] - Lr[j+3]*ln[j+3];\n"
     "            for(; j<i; j++) sum -= Lr[j]*ln[j];\n"
     "            disp += i;\n"
     "        }\n"),
    # M*u of the feasibility scan, four rows at a time
    ("src/auxiliary.c",
     "        c_float sum0=0, sum1=0, sum2=0, sum3=0;\n        for(int k=0; k<n; k++){",
     "        c_float sum0=0, sum1=0, sum2=0, sum3=0;\n"
     "        int nk = n;\n"
     "        if(work->row_nnz != NULL){\n"
     "            const int *z = work->row_nnz+row;\n"
     "            nk = z[0] > z[1] ? z[0] : z[1];\n"
     "            if(z[2] > nk) nk = z[2];\n"
     "            if(z[3] > nk) nk = z[3];\n"
     "        }\n"
     "        for(int k=0; k<nk; k++){"),
    ("src/auxiliary.c",
     "        work->Mu[row] = daqp_dot_inline(work->M+row*n,work->u,n);",
     "        work->Mu[row] = daqp_dot_inline(work->M+row*n,work->u,\n"
     "                work->row_nnz != NULL ? work->row_nnz[row] : n);"),
    # a row times a vector
    ("src/auxiliary.c",
     "        for(j = 0, disp = work->n*(id-work->ms); j < work->n; j++) s += work->M[disp++]*v[j];",
     f"        for(j = 0, disp = work->n*(id-work->ms); j < {NNZ}(work,id); j++) s += work->M[disp++]*v[j];"),
    # y -= M_W'dlam
    ("src/auxiliary.c",
     "            for(j = 0, disp = work->n*(id-work->ms); j < work->n; j++)\n"
     "                y[j] -= work->M[disp++]*dl;",
     f"            for(j = 0, disp = work->n*(id-work->ms); j < {NNZ}(work,id); j++)\n"
     "                y[j] -= work->M[disp++]*dl;"),
    # residuals of the active rows
    ("src/auxiliary.c",
     "            for(j=0, disp=work->n*(id-work->ms); j<work->n; j++)\n"
     "                Mu += work->M[disp++] * work->u[j];",
     f"            for(j=0, disp=work->n*(id-work->ms); j<{NNZ}(work,id); j++)\n"
     "                Mu += work->M[disp++] * work->u[j];"),
    # the LDL update: |m|^2 and M_W m
    # fused multiply-adds (Cortex-M4F: vfma), which -std=c99 turns off
    ("src/auxiliary.c", '#include "auxiliary.h"\n', '#include "auxiliary.h"\n' + _FMA),
    ("src/factorization.c", '#include "factorization.h"\n', '#include "factorization.h"\n' + _FMA),
    ("src/daqp.c", '#include "daqp.h"\n', '#include "daqp.h"\n' + _FMA),
    ("src/factorization.c",
     "        sum = dot_row(Mi+start_col,Mi+start_col,work->n-start_col);",
     "        sum = dot_row(Mi+start_col,Mi+start_col,\n"
     f"                add_ind >= work->ms ? {NNZ}(work,add_ind) : work->n-start_col);"),
    ("src/factorization.c",
     "            sum = dot_row(Mk+j,Mi+j,work->n-j);",
     "            sum = dot_row(Mk+j,Mi+j,(id >= work->ms && add_ind >= work->ms) ?\n"
     f"                    ({NNZ}(work,id) < {NNZ}(work,add_ind) ? {NNZ}(work,id) : {NNZ}(work,add_ind))\n"
     "                    : work->n-j);"),
)


class DaqpPatchError(RuntimeError):
    """A DAQP source does not contain the text that the patch replaces (exactly once)."""


def patch_daqp_rti(daqp_dir: Path) -> None:
    """Apply :data:`EDITS` to the DAQP copy in ``daqp_dir`` (``include/``, ``src/``)."""
    texts: dict[str, str] = {}
    for name, old, new in EDITS:
        text = texts.get(name)
        if text is None:
            text = (daqp_dir / name).read_text()
        count = text.count(old)
        if count != 1:
            raise DaqpPatchError(f"{name}: expected the patched text once, found it {count} times:\n{old}")
        texts[name] = text.replace(old, new)
    for name, text in texts.items():
        (daqp_dir / name).write_text(text)
