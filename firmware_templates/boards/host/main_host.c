/* Entry point of the controller firmware on the POSIX host board.
 *
 *     controller --fd N        serve the protocol on the inherited file descriptor N
 *     controller --serial PATH open PATH (a tty, a pty, a FIFO) read-write
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "board_host.h"
#include "controller.h"

int main(int argc, char **argv)
{
    int fd = -1;
    if (argc == 3 && strcmp(argv[1], "--fd") == 0) {
        char *end = 0;
        long v = strtol(argv[2], &end, 10);
        if (end != argv[2] && *end == '\0' && v >= 0 && v < 65536) fd = (int)v;
    } else if (argc == 3 && strcmp(argv[1], "--serial") == 0) {
        fd = open(argv[2], O_RDWR | O_NOCTTY);
    }
    if (fd < 0) return 2; /* usage: --fd N | --serial PATH */
    board_host_set_serial(fd);
    rlmpc_controller_run();
}
