/* Entry point of the controller firmware on boards whose start-up calls main(void). */
#include "controller.h"

int main(void)
{
    rlmpc_controller_run();
}
