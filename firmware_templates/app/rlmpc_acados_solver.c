/* rlmpc_acados_solver.h on top of an acados bundle's rlmpc_controller (see the header). */
#include "rlmpc_acados_solver.h"

#include <stddef.h>

#include "rlmpc_controller.h"

static rlmpc_controller *controller = NULL;

void rlmpc_reset(void)
{
    if (controller == NULL) controller = rlmpc_controller_create();
    if (controller != NULL) (void)rlmpc_controller_reset(controller);
}

int rlmpc_solve(const rlmpc_real x0[RLMPC_NX], rlmpc_real u0[RLMPC_NU], rlmpc_solver_info *info)
{
    int status, i;
    info->iterations = 0;
    info->sqp_iterations = 0;
    info->n_active = -1;
    for (i = 0; i < RLMPC_NX; i++) {
        if (!(x0[i] - x0[i] == 0)) { /* NaN or infinite */
            info->status = RLMPC_INVALID_STATE;
            return info->status;
        }
    }
    if (controller == NULL) rlmpc_reset();
    if (controller == NULL) {
        info->status = RLMPC_NO_SOLVER;
        return info->status;
    }
    status = rlmpc_controller_solve(controller, x0, u0);
    info->sqp_iterations = rlmpc_controller_iterations(controller);
    info->iterations = rlmpc_controller_qp_iterations(controller);
    /* a real-time iteration whose QP did not converge is success to acados, not verified to us */
    if (status == 0 && rlmpc_controller_unverified(controller)) info->status = RLMPC_OPTIMAL_INEXACT;
    else info->status = status == 0 ? RLMPC_OPTIMAL : -status;
    return info->status;
}

void rlmpc_get_plan(rlmpc_real x[], rlmpc_real u[])
{
    if (controller != NULL) rlmpc_controller_prediction(controller, x, u);
}

#if RLMPC_CONTROLLER_NTHETA > 0
int rlmpc_set_theta(const rlmpc_real theta[RLMPC_NTHETA])
{
    static double old[RLMPC_NTHETA];
    int i;
    for (i = 0; i < RLMPC_NTHETA; i++)
        if (!(theta[i] >= RLMPC_THETA_LB[i] && theta[i] <= RLMPC_THETA_UB[i])) return -1; /* (NaN too) */
    rlmpc_controller_get_theta(old);
    if (rlmpc_controller_set_theta(controller, theta) != 0) {
        (void)rlmpc_controller_set_theta(controller, old);
        return -2;
    }
    rlmpc_reset();
    return 0;
}

void rlmpc_get_theta_bounds(const rlmpc_real **lb, const rlmpc_real **ub)
{
    *lb = RLMPC_THETA_LB;
    *ub = RLMPC_THETA_UB;
}
#endif

#if RLMPC_CONTROLLER_NP > 0
int rlmpc_set_params(const rlmpc_real p[RLMPC_CONTROLLER_NP])
{
    int i;
    for (i = 0; i < RLMPC_CONTROLLER_NP; i++)
        if (!(p[i] - p[i] == 0)) return -1;
    return rlmpc_controller_set_params(controller, p) == 0 ? 0 : -1;
}
#endif
