/* Host test harness of a generated rlmpc solver: one command per line on stdin.
 *   s x0[0] ... x0[NX-1]   solve; prints "status iterations n_active u0[0] ... u0[NU-1]"
 *   p                      prints the plan of the last successful solve: x then u
 *   r                      forget the warm start; prints "ok"
 */
#include <stdio.h>
#include <stdlib.h>
#include "rlmpc_solver.h"

#define NXP ((RLMPC_HORIZON + 1) * RLMPC_NX)
#define NUP (RLMPC_HORIZON * RLMPC_NU)

int main(void)
{
    char cmd[8];
    static rlmpc_real x[NXP], u[NUP];
    int i;
    while (scanf("%7s", cmd) == 1) {
        if (cmd[0] == 'r') {
            rlmpc_reset();
            printf("ok\n");
        } else if (cmd[0] == 's') {
            rlmpc_real x0[RLMPC_NX], u0[RLMPC_NU];
            rlmpc_solver_info info;
            for (i = 0; i < RLMPC_NX; i++) {
                double xi;
                if (scanf("%lf", &xi) != 1) return 2;
                x0[i] = (rlmpc_real)xi;
            }
            rlmpc_solve(x0, u0, &info);
            printf("%d %d %d", info.status, info.iterations, info.n_active);
            for (i = 0; i < RLMPC_NU; i++) printf(" %.17g", (double)u0[i]);
            printf("\n");
        } else if (cmd[0] == 'p') {
            rlmpc_get_plan(x, u);
            for (i = 0; i < NXP; i++) printf("%.17g ", (double)x[i]);
            for (i = 0; i < NUP; i++) printf("%.17g ", (double)u[i]);
            printf("\n");
        } else {
            return cmd[0] == 'q' ? 0 : 2;
        }
        fflush(stdout);
    }
    return 0;
}
