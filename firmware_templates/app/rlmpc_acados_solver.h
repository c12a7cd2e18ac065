/* The solver API of the controller firmware (as in the bare-metal solvers' rlmpc_solver.h)
 * on top of an acados bundle's controller (src/rlmpc_controller.h of `rlmpc export --target
 * linux-aarch64|linux-x86_64`): the embedded-Linux controllers run the acados solver itself.
 *
 * double precision; the acados solver warm-starts from its previous solution; created on the
 * first rlmpc_reset() (the control loop calls it at start-up).
 */
#ifndef RLMPC_ACADOS_SOLVER_H
#define RLMPC_ACADOS_SOLVER_H

#include "rlmpc_controller.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RLMPC_HORIZON RLMPC_N
#define RLMPC_SINGLE_PRECISION 0
#define RLMPC_SOLVER_REPORTS_SQP 1 /* rlmpc_solver_info has sqp_iterations */

typedef double rlmpc_real;

/* status of a solve: 1 solved; -k for acados status k (2: iteration limit, 4: QP failure ...);
 * -100 x0 not finite; -101 the solver could not be created */
#define RLMPC_OPTIMAL 1
#define RLMPC_SOFT_OPTIMAL 2   /* not reported by acados */
#define RLMPC_OPTIMAL_INEXACT 4 /* a real-time iteration whose QP did not converge (acados: success) */
#define RLMPC_ITERLIMIT (-2)
#define RLMPC_INVALID_STATE (-100)
#define RLMPC_NO_SOLVER (-101)

typedef struct {
    int status;         /* as returned by rlmpc_solve */
    int iterations;     /* QP iterations of this solve, summed over its SQP iterations */
    int sqp_iterations; /* SQP iterations of this solve */
    int n_active;       /* not reported by acados: -1 */
} rlmpc_solver_info;

int rlmpc_solve(const rlmpc_real x0[RLMPC_NX], rlmpc_real u0[RLMPC_NU], rlmpc_solver_info *info);

/* Forget the warm start (the next solve starts from a zero iterate). */
void rlmpc_reset(void);

/* The plan of the last solve: x has (RLMPC_HORIZON + 1) * RLMPC_NX entries, u has
 * RLMPC_HORIZON * RLMPC_NU. */
void rlmpc_get_plan(rlmpc_real x[], rlmpc_real u[]);

#if RLMPC_CONTROLLER_NTHETA > 0
#define RLMPC_NTHETA RLMPC_CONTROLLER_NTHETA
/* θ in the acados parameters of every stage from the next solve on; -1 if a value is outside its
 * bounds or not finite, -2 if acados refused (θ in use kept in both cases).  Resets the warm start.
 * The horizon and the constraint structure are those of the export. */
int rlmpc_set_theta(const rlmpc_real theta[RLMPC_NTHETA]);
void rlmpc_get_theta_bounds(const rlmpc_real **lb, const rlmpc_real **ub);
#define RLMPC_SOLVER_HAS_THETA 1
#endif
#if RLMPC_CONTROLLER_NP > 0
/* p in the acados parameters of every stage from the next solve on; -1 if a value is not finite. */
int rlmpc_set_params(const rlmpc_real p[RLMPC_CONTROLLER_NP]);
#define RLMPC_SOLVER_HAS_PARAMS 1
#endif

#ifdef __cplusplus
}
#endif

#endif /* RLMPC_ACADOS_SOLVER_H */
