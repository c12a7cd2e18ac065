/* Host test harness of a generated rlmpc solver: one command per line on stdin.
 *   s x0[0] ... x0[NX-1]   solve; prints "status iterations n_active u0[0] ... u0[NU-1]"
 *   r                      forget the warm start; prints "ok"
 */
#include <stdio.h>
#include <stdlib.h>
#include "rlmpc_solver.h"

int main(void)
{
    char cmd[8];
    while (scanf("%7s", cmd) == 1) {
        if (cmd[0] == 'r') {
            rlmpc_reset();
            printf("ok\n");
        } else if (cmd[0] == 's') {
            rlmpc_real x0[RLMPC_NX], u0[RLMPC_NU];
            rlmpc_solver_info info;
            int i;
            for (i = 0; i < RLMPC_NX; i++) {
                double xi;
                if (scanf("%lf", &xi) != 1) return 2;
                x0[i] = (rlmpc_real)xi;
            }
            rlmpc_solve(x0, u0, &info);
            printf("%d %d %d", info.status, info.iterations, info.n_active);
            for (i = 0; i < RLMPC_NU; i++) printf(" %.17g", (double)u0[i]);
            printf("\n");
        } else {
            return cmd[0] == 'q' ? 0 : 2;
        }
        fflush(stdout);
    }
    return 0;
}
