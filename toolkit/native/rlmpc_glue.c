/*
 * rlmpc_glue.c - a thin, allocation-free-per-call C layer over one
 * acados-generated OCP solver, so that Python crosses the ctypes boundary once
 * per solve instead of once per stage and field.
 *
 * Compiled per generated solver with
 *   -DRLMPC_MODEL=<model name>  -DRLMPC_HEADER="acados_solver_<model name>.h"
 *
 * Iterate layout used by rlmpc_get_iterate / rlmpc_set_iterate, stage by stage:
 *   x_0..x_N | u_0..u_{N-1} | sl_0..sl_N | su_0..su_N | pi_0..pi_{N-1} | lam_0..lam_N
 * with per-stage sizes as reported by rlmpc_stage_sizes.
 */
#define _POSIX_C_SOURCE 200809L /* dup, dup2, fstat under -std=c99 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <math.h>

#include "blasfeo_d_aux.h"

#include "acados_c/ocp_nlp_interface.h"
#include RLMPC_HEADER

#define RLMPC_CAT2(a, b) a##b
#define RLMPC_CAT(a, b) RLMPC_CAT2(a, b)
#define RLMPC_FN(suffix) RLMPC_CAT(RLMPC_MODEL, suffix)
#define RLMPC_CAPSULE RLMPC_CAT(RLMPC_MODEL, _solver_capsule)

typedef struct {
    int nu, nx, ns, npi, nlam; /* sizes of the iterate's fields at one stage */
} rlmpc_stage;

typedef struct {
    RLMPC_CAPSULE *capsule;
    ocp_nlp_config *config;
    ocp_nlp_dims *dims;
    ocp_nlp_in *in;
    ocp_nlp_out *out;
    ocp_nlp_solver *solver;
    void *opts;
    int N;
    rlmpc_stage *stages; /* N + 1 */
} rlmpc_handle;

static const char *const FIELDS[] = {"x", "u", "sl", "su", "pi", "lam"};

void rlmpc_get_stats(void *handle, double *out);
void rlmpc_stage_sizes(void *handle, int *sizes);
void rlmpc_free(void *handle);
static void last_qp(rlmpc_handle *h, double *qp_status, double *qp_iter);
enum { NFIELDS = 6 };

void *rlmpc_create(void) {
    RLMPC_CAPSULE *capsule = RLMPC_FN(_acados_create_capsule)();
    if (capsule == NULL) return NULL;
    if (RLMPC_FN(_acados_create)(capsule) != 0) {
        RLMPC_FN(_acados_free_capsule)(capsule);
        return NULL;
    }
    rlmpc_handle *h = (rlmpc_handle *)calloc(1, sizeof(rlmpc_handle));
    if (h == NULL) return NULL;
    h->capsule = capsule;
    h->config = RLMPC_FN(_acados_get_nlp_config)(capsule);
    h->dims = RLMPC_FN(_acados_get_nlp_dims)(capsule);
    h->in = RLMPC_FN(_acados_get_nlp_in)(capsule);
    h->out = RLMPC_FN(_acados_get_nlp_out)(capsule);
    h->solver = RLMPC_FN(_acados_get_nlp_solver)(capsule);
    h->opts = RLMPC_FN(_acados_get_nlp_opts)(capsule);
    h->N = h->dims->N;
    h->stages = (rlmpc_stage *)calloc((size_t)h->N + 1, sizeof(rlmpc_stage));
    if (h->stages == NULL) {
        rlmpc_free(h);
        return NULL;
    }
    int *sizes = (int *)calloc(((size_t)h->N + 1) * NFIELDS, sizeof(int));
    if (sizes == NULL) {
        rlmpc_free(h);
        return NULL;
    }
    rlmpc_stage_sizes(h, sizes);
    for (int k = 0; k <= h->N; k++) {
        const int *z = sizes + k * NFIELDS; /* x, u, sl, su, pi, lam */
        rlmpc_stage st = {z[1], z[0], z[2], z[4], z[5]};
        h->stages[k] = st;
    }
    free(sizes);
    return h;
}

void rlmpc_free(void *handle) {
    rlmpc_handle *h = (rlmpc_handle *)handle;
    if (h == NULL) return;
    RLMPC_FN(_acados_free)(h->capsule);
    RLMPC_FN(_acados_free_capsule)(h->capsule);
    free(h->stages);
    free(h);
}

/* HPIPM's initial barrier parameter (the caller checks that the QP solver is HPIPM). */
void rlmpc_set_qp_mu0(void *handle, double mu0) {
    rlmpc_handle *h = (rlmpc_handle *)handle;
    ocp_nlp_solver_opts_set(h->config, h->opts, "qp_mu0", &mu0);
}

int rlmpc_horizon(void *handle) { return ((rlmpc_handle *)handle)->N; }

/* sizes[k*6 + f] for stage k = 0..N and field f in FIELDS (0 where absent). */
void rlmpc_stage_sizes(void *handle, int *sizes) {
    rlmpc_handle *h = (rlmpc_handle *)handle;
    for (int k = 0; k <= h->N; k++) {
        for (int f = 0; f < NFIELDS; f++) {
            int absent = (k == h->N) && (f == 1 || f == 4); /* no u_N, no pi_N */
            sizes[k * NFIELDS + f] =
                absent ? 0 : ocp_nlp_dims_get_from_attr(h->config, h->dims, h->out, k, FIELDS[f]);
        }
    }
}

int rlmpc_set_params(void *handle, int stage, double *p, int np) {
    rlmpc_handle *h = (rlmpc_handle *)handle;
    return RLMPC_FN(_acados_update_params)(h->capsule, stage, p, np);
}

/* Set the same parameter block on all stages: p_all holds (N+1) rows of np. */
int rlmpc_set_params_all(void *handle, double *p_all, int np) {
    rlmpc_handle *h = (rlmpc_handle *)handle;
    for (int k = 0; k <= h->N; k++) {
        int status = RLMPC_FN(_acados_update_params)(h->capsule, k, p_all + k * np, np);
        if (status != 0) return status;
    }
    return 0;
}

void rlmpc_constraints_set(void *handle, int stage, const char *field, double *value) {
    rlmpc_handle *h = (rlmpc_handle *)handle;
    ocp_nlp_constraints_model_set(h->config, h->dims, h->in, stage, field, value);
}

void rlmpc_cost_set(void *handle, int stage, const char *field, double *value) {
    rlmpc_handle *h = (rlmpc_handle *)handle;
    ocp_nlp_cost_model_set(h->config, h->dims, h->in, stage, field, value);
}

/*
 * One solve: x_0 fixed to x0, u_0 bounded by [lbu0, ubu0] (equal for Q(s,a)).
 * stats: [status, sqp_iter, time_tot, cost]
 */
static int solve(void *handle, double *x0, double *lbu0, double *ubu0, double *stats, int want_cost);

int rlmpc_solve(void *handle, double *x0, double *lbu0, double *ubu0, double *stats) {
    return solve(handle, x0, lbu0, ubu0, stats, 1);
}

/* The cost of the last solve (what rlmpc_solve reports; for a solve made without it). */
double rlmpc_cost(void *handle) {
    rlmpc_handle *h = (rlmpc_handle *)handle;
    double cost = 0.0;
    ocp_nlp_eval_cost(h->solver, h->in, h->out);
    ocp_nlp_get(h->config, h->solver, "cost_value", &cost);
    return cost;
}

static int solve(void *handle, double *x0, double *lbu0, double *ubu0, double *stats, int want_cost) {
    rlmpc_handle *h = (rlmpc_handle *)handle;
    ocp_nlp_constraints_model_set(h->config, h->dims, h->in, 0, "lbx", x0);
    ocp_nlp_constraints_model_set(h->config, h->dims, h->in, 0, "ubx", x0);
    if (lbu0 != NULL) ocp_nlp_constraints_model_set(h->config, h->dims, h->in, 0, "lbu", lbu0);
    if (ubu0 != NULL) ocp_nlp_constraints_model_set(h->config, h->dims, h->in, 0, "ubu", ubu0);
    int status = RLMPC_FN(_acados_solve)(h->capsule);
    int sqp_iter = 0;
    double time_tot = 0.0, cost = 0.0;
    ocp_nlp_get(h->config, h->solver, "sqp_iter", &sqp_iter);
    ocp_nlp_get(h->config, h->solver, "time_tot", &time_tot);
    if (want_cost) {
        ocp_nlp_eval_cost(h->solver, h->in, h->out);
        ocp_nlp_get(h->config, h->solver, "cost_value", &cost);
    } else {
        cost = NAN; /* (rlmpc_cost computes it when wanted) */
    }
    stats[0] = (double)status;
    stats[1] = (double)sqp_iter;
    stats[2] = time_tot;
    stats[3] = cost;
    fflush(stdout); /* acados prints on failures; the caller captures fd 1 */
    return status;
}

static void copy_iterate(rlmpc_handle *h, double *buf, int to_solver) {
    double *cur = buf;
    for (int f = 0; f < NFIELDS; f++) {
        for (int k = 0; k <= h->N; k++) {
            if (k == h->N && (f == 1 || f == 4)) continue;
            int n = ocp_nlp_dims_get_from_attr(h->config, h->dims, h->out, k, FIELDS[f]);
            if (n == 0) continue;
            if (to_solver)
                ocp_nlp_out_set(h->config, h->dims, h->out, k, FIELDS[f], cur);
            else
                ocp_nlp_out_get(h->config, h->dims, h->out, k, FIELDS[f], cur);
            cur += n;
        }
    }
}

void rlmpc_get_iterate(void *handle, double *buf) { copy_iterate((rlmpc_handle *)handle, buf, 0); }

/* copy_iterate(h, buf, 0) read straight from the solver's vectors: ux = [u; x; sl; su], pi, lam
 * (acados' ocp_nlp_out_get does the same unpacking behind a field-name lookup per call). */
static void read_iterate(rlmpc_handle *h, double *buf) {
    ocp_nlp_out *out = h->out;
    double *cur = buf;
    for (int k = 0; k <= h->N; k++) { /* x */
        blasfeo_unpack_dvec(h->stages[k].nx, out->ux + k, h->stages[k].nu, cur, 1);
        cur += h->stages[k].nx;
    }
    for (int k = 0; k < h->N; k++) { /* u */
        blasfeo_unpack_dvec(h->stages[k].nu, out->ux + k, 0, cur, 1);
        cur += h->stages[k].nu;
    }
    for (int k = 0; k <= h->N; k++) { /* sl */
        const rlmpc_stage *st = h->stages + k;
        blasfeo_unpack_dvec(st->ns, out->ux + k, st->nu + st->nx, cur, 1);
        cur += st->ns;
    }
    for (int k = 0; k <= h->N; k++) { /* su */
        const rlmpc_stage *st = h->stages + k;
        blasfeo_unpack_dvec(st->ns, out->ux + k, st->nu + st->nx + st->ns, cur, 1);
        cur += st->ns;
    }
    for (int k = 0; k < h->N; k++) { /* pi */
        blasfeo_unpack_dvec(h->stages[k].npi, out->pi + k, 0, cur, 1);
        cur += h->stages[k].npi;
    }
    for (int k = 0; k <= h->N; k++) { /* lam */
        blasfeo_unpack_dvec(h->stages[k].nlam, out->lam + k, 0, cur, 1);
        cur += h->stages[k].nlam;
    }
}

/*
 * rlmpc_solve, then rlmpc_get_iterate, in one call.  With trap_fd >= 0, file
 * descriptor 1 is redirected to trap_fd during the solve (what acados prints goes
 * there); stats[4] is then the size of that file afterwards (0: nothing printed).
 * stats: [status, sqp_iter, time_tot, cost, trapped bytes, qp_status, qp_iter] where the last
 * two are those of the last QP solved (SQP_RTI reports success when that QP stopped at its
 * iteration limit: the caller checks qp_status).
 */
static int solve_full(void *handle, double *x0, double *lbu0, double *ubu0, double *stats,
                      double *iterate, int trap_fd, int want_cost);

int rlmpc_solve_full(void *handle, double *x0, double *lbu0, double *ubu0, double *stats,
                     double *iterate, int trap_fd) {
    return solve_full(handle, x0, lbu0, ubu0, stats, iterate, trap_fd, 1);
}

/* rlmpc_solve_full without the cost (stats[3] NaN; rlmpc_cost computes it), for callers that only
 * want the policy. */
int rlmpc_solve_policy(void *handle, double *x0, double *lbu0, double *ubu0, double *stats,
                       double *iterate, int trap_fd) {
    return solve_full(handle, x0, lbu0, ubu0, stats, iterate, trap_fd, 0);
}

static int solve_full(void *handle, double *x0, double *lbu0, double *ubu0, double *stats,
                      double *iterate, int trap_fd, int want_cost) {
    int saved = -1;
    if (trap_fd >= 0) {
        fflush(stdout);
        saved = dup(1);
        if (saved >= 0 && dup2(trap_fd, 1) < 0) {
            close(saved);
            saved = -1;
        }
    }
    int status = solve(handle, x0, lbu0, ubu0, stats, want_cost); /* ends with fflush(stdout) */
    if (saved >= 0) {
        dup2(saved, 1);
        close(saved);
    }
    stats[4] = 0.0;
    if (trap_fd >= 0) {
        struct stat st;
        if (fstat(trap_fd, &st) == 0) stats[4] = (double)st.st_size;
    }
    last_qp((rlmpc_handle *)handle, stats + 5, stats + 6);
    read_iterate((rlmpc_handle *)handle, iterate);
    return status;
}

/* Two solves back to back (Q(s, a) and V(s+) of a learning step: one crossing from Python, and the
 * second solve finds the solver's data still in the caches); arguments as rlmpc_solve_full's, twice. */
void rlmpc_solve_pair(void *h1, double *x1, double *lbu1, double *ubu1, double *stats1, double *it1,
                      int trap1, void *h2, double *x2, double *lbu2, double *ubu2, double *stats2,
                      double *it2, int trap2) {
    rlmpc_solve_full(h1, x1, lbu1, ubu1, stats1, it1, trap1);
    rlmpc_solve_full(h2, x2, lbu2, ubu2, stats2, it2, trap2);
}

void rlmpc_set_iterate(void *handle, double *buf) { copy_iterate((rlmpc_handle *)handle, buf, 1); }

int rlmpc_reset(void *handle) {
    rlmpc_handle *h = (rlmpc_handle *)handle;
    return RLMPC_FN(_acados_reset)(h->capsule, 1);
}

/* Status and iterations of the last QP solved (acados' statistics table; -1 when absent). */
static void last_qp(rlmpc_handle *h, double *qp_status, double *qp_iter) {
    int sqp_iter = 0, stat_m = 0, stat_n = 0;
    ocp_nlp_get(h->config, h->solver, "sqp_iter", &sqp_iter);
    ocp_nlp_get(h->config, h->solver, "stat_m", &stat_m);
    ocp_nlp_get(h->config, h->solver, "stat_n", &stat_n);
    *qp_status = -1.0;
    *qp_iter = -1.0;
    int n_row = stat_m < sqp_iter + 1 ? stat_m : sqp_iter + 1;
    if (n_row >= 2 && stat_n >= 2 && (stat_n + 1) * n_row <= 4096) {
        double table[4096];
        ocp_nlp_get(h->config, h->solver, "statistics", table);
        /* column-major: table[ii + (jj+1)*n_row] = stat[jj + ii*stat_n]; the QP status and
         * iterations are columns 0, 1 (SQP_RTI) or 4, 5 (SQP) of the last row */
        int jq = stat_n >= 6 ? 4 : 0;
        int ii = n_row - 1;
        *qp_status = table[ii + (jq + 1) * n_row];
        *qp_iter = table[ii + (jq + 2) * n_row];
    }
}

/*
 * Statistics of the last solve: out = [qp_status, qp_iter, time_lin, time_qp,
 * time_qp_solver_call, time_qp_xcond, time_reg, time_tot] (times in seconds).
 */
void rlmpc_get_stats(void *handle, double *out) {
    rlmpc_handle *h = (rlmpc_handle *)handle;
    last_qp(h, out, out + 1);
    static const char *const TIMES[] = {"time_lin", "time_qp", "time_qp_solver_call",
                                        "time_qp_xcond", "time_reg", "time_tot"};
    for (int i = 0; i < 6; i++) {
        double t = 0.0;
        ocp_nlp_get(h->config, h->solver, TIMES[i], &t);
        out[2 + i] = t;
    }
}

/* Upper bounds of h on stages 1..N-1 (uh_mid) and N (uh_end): moved by θ when soft pairs merge. */
void rlmpc_set_uh_stages(void *handle, double *uh_mid, double *uh_end) {
    rlmpc_handle *h = (rlmpc_handle *)handle;
    for (int k = 1; k < h->N; k++)
        ocp_nlp_constraints_model_set(h->config, h->dims, h->in, k, "uh", uh_mid);
    ocp_nlp_constraints_model_set(h->config, h->dims, h->in, h->N, "uh", uh_end);
}
