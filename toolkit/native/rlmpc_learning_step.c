/*
 * rlmpc_learning_step.c - the common case of a second-order LSTD Q-learning step in one C call.
 *
 * rlmpc.toolkit.rl.native_step fills a rlmpc_qstep context with what the step needs: the glue's
 * solve and parameter functions with the Q and V solver handles (rlmpc_glue.c), the CasADi-generated
 * C of (dL/dtheta, d2L/dtheta2) and of the merged soft rows' upper bounds, and LAPACK routines (numpy's
 * for the eigenvalues and the Cholesky factor, scipy's for the triangular solves: the routines the
 * Python path calls, so the results are the same bits).  One call then does what
 * LstdQLearning.observe and NewtonMethod.step do in Python:
 *
 *   solve Q(s, a) and V(s+); delta = L + gamma V(s+) - Q(s, a); g = -delta dQ/dtheta,
 *   H = dQ dQ^T - delta d2Q; the Newton step of NewtonMethod; theta clipped to its bounds and set on
 *   both solvers (stage parameters, merged upper bounds).
 *
 * Anything that is not this common case stops early and is left to Python with what was computed:
 *   RLMPC_STEP_DONE (0)   theta updated everywhere;
 *   RLMPC_STEP_SOLVES (1) a solve failed, printed, or its QP was not verified: nothing after the
 *                         solves was done (the iterates and statistics are in the instances' buffers);
 *   RLMPC_STEP_UPDATE (2) the solves and the sample are done (td, g, H), the update is not (the step
 *                         leaves the step box, or a factorisation failed: the Python optimiser decides).
 */
#include <float.h>
#include <math.h>
#include <string.h>

typedef long long casadi_int;
typedef int (*casadi_fn)(const double **arg, double **res, casadi_int *iw, double *w, int mem);
typedef int (*solve_full_fn)(void *h, double *x0, double *lbu0, double *ubu0, double *stats,
                             double *iterate, int trap_fd);
typedef int (*set_params_all_fn)(void *h, double *p_all, int np);
typedef void (*set_uh_stages_fn)(void *h, double *uh_mid, double *uh_end);
/* numpy's LAPACK (ILP64) and scipy's (LP64) */
typedef void (*syevd64_fn)(char *jobz, char *uplo, long long *n, double *a, long long *lda, double *w,
                           double *work, long long *lwork, long long *iwork, long long *liwork,
                           long long *info);
typedef void (*potrf64_fn)(char *uplo, long long *n, double *a, long long *lda, long long *info);
typedef void (*potrs32_fn)(char *uplo, int *n, int *nrhs, double *a, int *lda, double *b, int *ldb,
                           int *info);

enum { RLMPC_STEP_DONE = 0, RLMPC_STEP_SOLVES = 1, RLMPC_STEP_UPDATE = 2 };

/* one solver instance's persistent buffers (AcadosInstance) */
typedef struct {
    void *handle;
    double *x0, *lbu0, *ubu0, *stats, *iterate;
    int trap_fd;
} rlmpc_instance;

typedef struct {
    /* solvers */
    solve_full_fn solve_full;
    set_params_all_fn set_params_all;
    set_uh_stages_fn set_uh_stages;
    rlmpc_instance q, v;
    int check_qp;            /* SQP_RTI: a QP stopped at its limit is not verified */
    /* problem */
    int nx, nu, ntheta, np, n_stage_params, n_stages;
    double *stage_params;    /* (N+1) x n_stage_params rows [theta; p; w_k], shared with MPC */
    double *lbu, *ubu;       /* V's input bounds */
    /* iterate expansion (soft pairs merged in acados): expanded[i] = [raw, consts][source[i]] */
    int n_raw, n_expanded;   /* n_expanded = n_raw and source NULL: no expansion */
    const long long *source;
    const double *consts;
    double *expanded;        /* n_expanded + 1 (the appended zero) */
    /* dL/dtheta, d2L/dtheta2: inputs (it, s, a, theta, p), outputs (g, H column-major) */
    casadi_fn gradhess;
    const double **gh_arg;
    double **gh_res;
    casadi_int *gh_iw;
    double *gh_w;
    double *grad, *hess;
    /* merged soft rows' upper bounds: inputs (theta, p), outputs (uh_mid, uh_end); NULL if none */
    casadi_fn upper;
    const double **up_arg;
    double **up_res;
    casadi_int *up_iw;
    double *up_w;
    double *uh_mid, *uh_end;
    /* learning */
    double discount, lr, damping;
    double *theta, *p, *lb, *ub;
    /* LAPACK and scratch: 3 n^2 + n + lwork doubles, liwork long longs */
    syevd64_fn syevd;
    potrf64_fn potrf;
    potrs32_fn potrs;
    double *work;
    long long lwork, liwork;
    long long *iwork;
    /* step inputs and outputs */
    double *s, *a, *s_next;
    double cost;
    int terminated;
    double td, q_value, v_value;
    double *g, *h;           /* the sample: -td grad, H (row-major n x n) */
    double *theta_out;
} rlmpc_qstep;

/* A solve MPC would accept as it is: stats = status, sqp_iter, time_tot, cost, printed bytes,
 * qp_status, qp_iter (SQP_RTI, check_qp: a QP stopped at its limit is not verified). */
static int verified(int check_qp, const double *stats) {
    if (stats[0] != 0.0 || stats[4] > 0.0) return 0;
    return !check_qp || stats[5] == 0.0;
}

/* The problem's own iterate (soft pairs merged in acados: out[i] = [raw, consts][source[i]]) with its
 * appended zero, as MPC's IterateExpansion and Sensitivities._unpack lay it out. */
static void expand_iterate(const double *raw, int n_raw, const long long *source, const double *consts,
                           int n_expanded, double *out) {
    if (source == NULL) {
        memcpy(out, raw, sizeof(double) * (size_t)n_raw);
    } else {
        for (int i = 0; i < n_expanded; i++) {
            long long j = source[i];
            out[i] = j < n_raw ? raw[j] : consts[j - n_raw];
        }
    }
    out[n_expanded] = 0.0;
}

static int cholesky(const rlmpc_qstep *c, long long n, const double *a, double *l) {
    memcpy(l, a, sizeof(double) * (size_t)(n * n));
    char uplo = 'L';
    long long info = 0;
    c->potrf(&uplo, &n, l, &n, &info);
    return info == 0 && !isnan(l[n * n - 1]) ? 0 : 1;
}

static double scale_of(long long n, const double *a) {
    double m = 1.0;
    for (long long i = 0; i < n * n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* NewtonMethod: new theta into theta_out; 0 done, 1 left to Python */
static int newton(rlmpc_qstep *c) {
    long long n = c->ntheta, nn = n * n;
    double *H = c->work, *A = H + nn, *L = A + nn, *eig = L + nn, *lapack_work = eig + n;
    for (long long i = 0; i < n; i++)
        for (long long j = 0; j < n; j++) H[i * n + j] = 0.5 * (c->h[i * n + j] + c->h[j * n + i]);
    for (long long i = 0; i < nn; i++)
        if (!isfinite(H[i])) return 1;
    memcpy(A, H, sizeof(double) * (size_t)nn);
    char jobz = 'N', lower = 'L';
    long long info = 0, lwork = c->lwork, liwork = c->liwork;
    c->syevd(&jobz, &lower, &n, A, &n, eig, lapack_work, &lwork, c->iwork, &liwork, &info);
    if (info != 0 || isnan(eig[0])) return 1;
    double lam_min = eig[0];
    double margin = -4.0 * (double)(n * n * n) * DBL_EPSILON;
    double min_diag = H[0];
    for (long long i = 1; i < n; i++) min_diag = H[i * n + i] < min_diag ? H[i * n + i] : min_diag;
    double shift;
    int factored = 0;
    if ((lam_min >= margin || lam_min >= margin * scale_of(n, H)) && min_diag > 0.0 &&
        cholesky(c, n, H, L) == 0) {
        shift = c->damping;
        memcpy(A, H, sizeof(double) * (size_t)nn);
        for (long long i = 0; i < n; i++) A[i * n + i] = H[i * n + i] + shift;
        factored = cholesky(c, n, A, L) == 0;
    } else {
        shift = c->damping + (0.0 > -lam_min ? 0.0 : -lam_min);
    }
    for (int attempt = 0; !factored && attempt < 200; attempt++) {
        memcpy(A, H, sizeof(double) * (size_t)nn);
        for (long long i = 0; i < n; i++) A[i * n + i] = H[i * n + i] + shift;
        if (cholesky(c, n, A, L) == 0) {
            factored = 1;
            break;
        }
        double twice = 2.0 * shift, floor = DBL_EPSILON * scale_of(n, H);
        shift = twice > floor ? twice : floor;
    }
    if (!factored) return 1;
    double *d = eig; /* the eigenvalues are no longer needed */
    for (long long i = 0; i < n; i++) {
        d[i] = c->lr * c->g[i] + 0.0;
        if (!isfinite(d[i])) return 1;
    }
    int n32 = (int)n, one = 1, info32 = 0;
    c->potrs(&lower, &n32, &one, L, &n32, d, &n32, &info32);
    if (info32 != 0) return 1;
    for (long long i = 0; i < n; i++) {
        double lo = c->lb[i] - c->theta[i], hi = c->ub[i] - c->theta[i];
        if (lo > 0.0 || hi < 0.0) return 1; /* theta outside its bounds: Python says so */
        lo = lo < 0.0 ? lo : 0.0;
        hi = hi > 0.0 ? hi : 0.0;
        if (lo == hi) return 1; /* a fixed parameter: Python eliminates it */
        d[i] = -d[i];
        if (d[i] < lo || d[i] > hi) return 1; /* the box QP */
    }
    for (long long i = 0; i < n; i++) {
        double t = c->theta[i] + d[i];
        t = t > c->lb[i] ? t : c->lb[i];
        c->theta_out[i] = t < c->ub[i] ? t : c->ub[i];
    }
    return 0;
}

static void push_theta(rlmpc_qstep *c) {
    for (int k = 0; k < c->n_stages; k++)
        memcpy(c->stage_params + (size_t)k * (size_t)c->n_stage_params, c->theta_out,
               sizeof(double) * (size_t)c->ntheta);
    c->set_params_all(c->q.handle, c->stage_params, c->n_stage_params);
    c->set_params_all(c->v.handle, c->stage_params, c->n_stage_params);
    if (c->upper != NULL) {
        c->up_arg[0] = c->theta_out;
        c->up_arg[1] = c->p;
        c->up_res[0] = c->uh_mid;
        c->up_res[1] = c->uh_end;
        c->upper(c->up_arg, c->up_res, c->up_iw, c->up_w, 0);
        c->set_uh_stages(c->q.handle, c->uh_mid, c->uh_end);
        c->set_uh_stages(c->v.handle, c->uh_mid, c->uh_end);
    }
}

int rlmpc_qlearning_step(rlmpc_qstep *c) {
    memcpy(c->q.x0, c->s, sizeof(double) * (size_t)c->nx);
    memcpy(c->q.lbu0, c->a, sizeof(double) * (size_t)c->nu);
    memcpy(c->q.ubu0, c->a, sizeof(double) * (size_t)c->nu);
    memcpy(c->v.x0, c->s_next, sizeof(double) * (size_t)c->nx);
    memcpy(c->v.lbu0, c->lbu, sizeof(double) * (size_t)c->nu);
    memcpy(c->v.ubu0, c->ubu, sizeof(double) * (size_t)c->nu);
    c->solve_full(c->q.handle, c->q.x0, c->q.lbu0, c->q.ubu0, c->q.stats, c->q.iterate, c->q.trap_fd);
    c->solve_full(c->v.handle, c->v.x0, c->v.lbu0, c->v.ubu0, c->v.stats, c->v.iterate, c->v.trap_fd);
    if (!verified(c->check_qp, c->q.stats) || !verified(c->check_qp, c->v.stats)) return RLMPC_STEP_SOLVES;
    c->q_value = c->q.stats[3];
    c->v_value = c->v.stats[3];
    c->td = c->cost + (c->terminated ? 0.0 : c->discount * c->v_value) - c->q_value;
    /* (dL/dtheta, d2L/dtheta2) at the Q solution, in the problem's own iterate layout */
    expand_iterate(c->q.iterate, c->n_raw, c->source, c->consts, c->n_expanded, c->expanded);
    c->gh_arg[0] = c->expanded;
    c->gh_arg[1] = c->s;
    c->gh_arg[2] = c->a;
    c->gh_arg[3] = c->theta;
    c->gh_arg[4] = c->p;
    c->gh_res[0] = c->grad;
    c->gh_res[1] = c->hess;
    c->gradhess(c->gh_arg, c->gh_res, c->gh_iw, c->gh_w, 0);
    int n = c->ntheta;
    for (int i = 0; i < n; i++) c->g[i] = -c->td * c->grad[i];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) /* hess is column-major: (i, j) at [i + j n] */
            c->h[i * n + j] = c->grad[i] * c->grad[j] - c->td * c->hess[i + j * n];
    if (newton(c) != 0) return RLMPC_STEP_UPDATE;
    push_theta(c);
    return RLMPC_STEP_DONE;
}

/* The work sizes of a CasADi-generated function (its _work entry point): sz[4] = arg, res, iw, w. */
typedef int (*casadi_work_fn)(casadi_int *sz_arg, casadi_int *sz_res, casadi_int *sz_iw, casadi_int *sz_w);
int rlmpc_casadi_work(void *work_fn, long long *sizes) {
    casadi_int a = 0, r = 0, i = 0, w = 0;
    int status = ((casadi_work_fn)work_fn)(&a, &r, &i, &w);
    sizes[0] = a;
    sizes[1] = r;
    sizes[2] = i;
    sizes[3] = w;
    return status;
}

/* dsyevd's workspace for n (eigenvalues only): lwork, liwork */
void rlmpc_syevd_work(void *syevd_ptr, long long n, long long *lwork, long long *liwork) {
    char jobz = 'N', uplo = 'L';
    double a = 0.0, w = 0.0, work = 0.0;
    long long iwork = 0, lw = -1, liw = -1, info = 0;
    ((syevd64_fn)syevd_ptr)(&jobz, &uplo, &n, &a, &n, &w, &work, &lw, &iwork, &liw, &info);
    *lwork = (long long)work;
    *liwork = iwork;
}

/* ------------------------------------------------------------------------------------------------
 * The policy's sensitivity from a reduction plan (rlmpc.toolkit.kkt_reduction.ReductionPlan), for
 * Sensitivities._planned_u_rows and the DPG step alike: K.flat[k_dst] = data[k_src],
 * rhs.flat[r_dst] = -data[r_src], K^T Y = E_u, du = Y^T rhs summed in row order.  K^T Y = E_u is what
 * numpy.linalg.solve hands to dgesv, done as dgesv does it (numpy's dgetrf, then dgetrs), and the LU
 * factors are kept in `cache` for the next call: a point with the same plan and bit for bit the same K
 * (an LTI problem between two theta updates) reuses them.  0: du holds the n_u x nth rows; 1: singular
 * or not finite.  K: n*n, rhs: n*nth, Y: n*n_u, ipiv: n.
 */
typedef void (*getrf64_fn)(long long *m, long long *n, double *a, long long *lda, long long *ipiv,
                           long long *info);
typedef void (*getrs64_fn)(char *trans, long long *n, long long *nrhs, double *a, long long *lda,
                           long long *ipiv, double *b, long long *ldb, long long *info);

typedef struct {
    const long long *plan;   /* the plan the factors belong to (its k_src), NULL: empty */
    int n, n_k, capacity_n, capacity_k;
    double *k_vals;          /* K's values they are of (capacity_k) */
    double *lu;              /* capacity_n^2 */
    long long *ipiv;         /* capacity_n */
} rlmpc_lu_cache;

int rlmpc_planned_u_rows(int n, int nth, int n_k, const long long *k_src, const long long *k_dst,
                         int n_r, const long long *r_src, const long long *r_dst, int n_u,
                         const long long *u_rows, const double *data, double *K, double *rhs,
                         double *Y, long long *ipiv, void *getrf_ptr, void *getrs_ptr,
                         rlmpc_lu_cache *cache, double *du) {
    int usable = cache != NULL && n <= cache->capacity_n && n_k <= cache->capacity_k;
    int hit = usable && cache->plan == k_src && cache->n == n && cache->n_k == n_k;
    for (int i = 0; hit && i < n_k; i++)
        if (memcmp(&cache->k_vals[i], &data[k_src[i]], sizeof(double)) != 0) hit = 0;
    memset(rhs, 0, sizeof(double) * (size_t)n * (size_t)nth);
    memset(Y, 0, sizeof(double) * (size_t)n * (size_t)n_u);
    for (int i = 0; i < n_r; i++) rhs[r_dst[i]] = -data[r_src[i]];
    for (int i = 0; i < n_u; i++) Y[u_rows[i] + (long long)i * n] = 1.0;
    long long nn = n, nrhs = n_u, info = 0;
    double *lu = K;
    long long *piv = ipiv;
    if (hit) {
        lu = cache->lu;
        piv = cache->ipiv;
    } else {
        memset(K, 0, sizeof(double) * (size_t)n * (size_t)n);
        for (int i = 0; i < n_k; i++) K[k_dst[i]] = data[k_src[i]];
        if (usable) cache->plan = NULL;
        ((getrf64_fn)getrf_ptr)(&nn, &nn, K, &nn, ipiv, &info);
        if (info != 0) return 1;
        if (usable) {
            memcpy(cache->lu, K, sizeof(double) * (size_t)n * (size_t)n);
            memcpy(cache->ipiv, ipiv, sizeof(long long) * (size_t)n);
            for (int i = 0; i < n_k; i++) cache->k_vals[i] = data[k_src[i]];
            cache->plan = k_src;
            cache->n = n;
            cache->n_k = n_k;
        }
    }
    char no_trans = 'N';
    ((getrs64_fn)getrs_ptr)(&no_trans, &nn, &nrhs, lu, &nn, piv, Y, &nn, &info);
    if (info != 0) return 1;
    for (int i = 0; i < n_u; i++) {
        for (int j = 0; j < nth; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++) sum += Y[k + (long long)i * n] * rhs[(long long)k * nth + j];
            if (!isfinite(sum)) return 1;
            du[(long long)i * nth + j] = sum;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * The DPG step's MPC work in one call: V(s) solved and verified, then dpi/dtheta from the cached
 * reduction plan of the solution's sparsity pattern and active set (Sensitivities._policy_jacobian_planned).
 *   RLMPC_DPG_DONE (0)     u0 and jac hold pi(s) and its sensitivity;
 *   RLMPC_DPG_SOLVE (1)    the solve failed, printed or was not verified (left to Python);
 *   RLMPC_DPG_PLAN (2)     no plan registered for this pattern and active set: Python makes it,
 *                          registers it (rlmpc_dpg_plans) and calls rlmpc_dpg_sensitivity;
 *   RLMPC_DPG_SINGULAR (3) the planned system is singular or not finite (Python's sparse path).
 */
enum { RLMPC_DPG_DONE = 0, RLMPC_DPG_SOLVE = 1, RLMPC_DPG_PLAN = 2, RLMPC_DPG_SINGULAR = 3 };
#define RLMPC_ACTIVE_TOL 1e-7

typedef struct {
    int n, n_k, n_r, n_u;
    const long long *k_src, *k_dst, *r_src, *r_dst, *u_rows, *u_out;
    unsigned long long hash;
    const unsigned char *key;
} rlmpc_plan;

typedef struct {
    solve_full_fn solve_full;
    rlmpc_instance v;
    int check_qp;
    int nx, nu, ntheta;
    double *lbu, *ubu;
    int n_raw, n_expanded;
    const long long *source;
    const double *consts;
    double *expanded;
    int nw, nmu, nlam;
    const long long *w_idx, *mu_plus, *mu_minus, *lam_idx;
    const double *mu_scale;
    double *w, *mu, *lam;
    casadi_fn kkt;
    const double **kkt_arg;
    double **kkt_res;
    casadi_int *kkt_iw;
    double *kkt_w;
    int n_kkt_out;
    const long long *kkt_offsets; /* output i's nonzeros at data + offsets[i] (i < 6), scratch after */
    double *data;
    int n_data;
    unsigned char *key;          /* n_data + nlam */
    rlmpc_plan *plans;
    int n_plans;
    void *getrf, *getrs;
    rlmpc_lu_cache *cache;
    double *K, *rhs, *Y, *du;
    long long *ipiv;
    double *s, *zero_a, *theta, *p;
    double *u0, *jac;            /* nu, nu x ntheta */
    int plan;                    /* the plan used (out) */
} rlmpc_dpg;

static unsigned long long fnv1a(const unsigned char *bytes, int n) {
    unsigned long long h = 1469598103934665603ULL;
    for (int i = 0; i < n; i++) {
        h ^= bytes[i];
        h *= 1099511628211ULL;
    }
    return h;
}

unsigned long long rlmpc_key_hash(const unsigned char *bytes, int n) { return fnv1a(bytes, n); }

int rlmpc_dpg_sensitivity(rlmpc_dpg *c) {
    int n_key = c->n_data + c->nlam;
    unsigned long long h = fnv1a(c->key, n_key);
    c->plan = -1;
    for (int i = 0; i < c->n_plans; i++) {
        if (c->plans[i].hash == h && memcmp(c->plans[i].key, c->key, (size_t)n_key) == 0) {
            c->plan = i;
            break;
        }
    }
    if (c->plan < 0) return RLMPC_DPG_PLAN;
    const rlmpc_plan *pl = &c->plans[c->plan];
    if (rlmpc_planned_u_rows(pl->n, c->ntheta, pl->n_k, pl->k_src, pl->k_dst, pl->n_r, pl->r_src,
                             pl->r_dst, pl->n_u, pl->u_rows, c->data, c->K, c->rhs, c->Y, c->ipiv,
                             c->getrf, c->getrs, c->cache, c->du) != 0)
        return RLMPC_DPG_SINGULAR;
    memset(c->jac, 0, sizeof(double) * (size_t)c->nu * (size_t)c->ntheta);
    for (int i = 0; i < pl->n_u; i++)
        memcpy(c->jac + pl->u_out[i] * c->ntheta, c->du + (long long)i * c->ntheta,
               sizeof(double) * (size_t)c->ntheta);
    return RLMPC_DPG_DONE;
}

int rlmpc_dpg_step(rlmpc_dpg *c) {
    memcpy(c->v.x0, c->s, sizeof(double) * (size_t)c->nx);
    memcpy(c->v.lbu0, c->lbu, sizeof(double) * (size_t)c->nu);
    memcpy(c->v.ubu0, c->ubu, sizeof(double) * (size_t)c->nu);
    c->solve_full(c->v.handle, c->v.x0, c->v.lbu0, c->v.ubu0, c->v.stats, c->v.iterate, c->v.trap_fd);
    if (!verified(c->check_qp, c->v.stats)) return RLMPC_DPG_SOLVE;
    /* the problem's own iterate, then (w, mu, lam) as Sensitivities._unpack */
    expand_iterate(c->v.iterate, c->n_raw, c->source, c->consts, c->n_expanded, c->expanded);
    for (int i = 0; i < c->nw; i++) c->w[i] = c->expanded[c->w_idx[i]];
    for (int i = 0; i < c->nmu; i++)
        c->mu[i] = c->mu_scale[i] * (c->expanded[c->mu_plus[i]] - c->expanded[c->mu_minus[i]]);
    for (int i = 0; i < c->nx && i < c->nmu; i++) c->mu[i] = 0.0;
    for (int i = 0; i < c->nlam; i++) c->lam[i] = c->expanded[c->lam_idx[i]];
    /* the KKT blocks' nonzeros */
    c->kkt_arg[0] = c->w;
    c->kkt_arg[1] = c->mu;
    c->kkt_arg[2] = c->lam;
    c->kkt_arg[3] = c->s;
    c->kkt_arg[4] = c->zero_a;
    c->kkt_arg[5] = c->theta;
    c->kkt_arg[6] = c->p;
    for (int i = 0; i < c->n_kkt_out; i++) c->kkt_res[i] = c->data + c->kkt_offsets[i];
    c->kkt(c->kkt_arg, c->kkt_res, c->kkt_iw, c->kkt_w, 0);
    for (int i = 0; i < c->n_data; i++) c->key[i] = c->data[i] != 0.0;
    for (int i = 0; i < c->nlam; i++) c->key[c->n_data + i] = c->lam[i] > RLMPC_ACTIVE_TOL;
    return rlmpc_dpg_sensitivity(c);
}
