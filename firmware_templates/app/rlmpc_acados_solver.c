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
    info->status = status == 0 ? RLMPC_OPTIMAL : -status;
    return info->status;
}

void rlmpc_get_plan(rlmpc_real x[], rlmpc_real u[])
{
    if (controller != NULL) rlmpc_controller_prediction(controller, x, u);
}
