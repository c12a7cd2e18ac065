/* Entry point of the controller firmware on the POSIX boards (host, linux-aarch64).
 *
 *     controller --fd N [--baud B]        serve the protocol on the inherited descriptor N
 *     controller --serial PATH [--baud B] open PATH (a serial device, a pty, a FIFO) read-write
 *
 * --baud sets the line speed of a serial device (9600 ... 2000000); without it the speed is
 * left as configured.  Exit codes: 2 usage or unusable port, 3 link closed, else EXIT's code.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "board_posix.h"
#include "controller.h"

static int parse_long(const char *text, long lo, long hi, long *out)
{
    char *end = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int usage(const char *why)
{
    fprintf(stderr, "controller: %s\nusage: controller --fd N | --serial PATH [--baud B]\n", why);
    return 2;
}

int main(int argc, char **argv)
{
    int fd = -1, i;
    long baud = 0, v;
    const char *path = 0;
    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--fd") == 0) {
            if (parse_long(argv[i + 1], 0, 65535, &v) != 0) return usage("--fd: expected a descriptor number");
            fd = (int)v;
        } else if (strcmp(argv[i], "--serial") == 0) {
            path = argv[i + 1];
        } else if (strcmp(argv[i], "--baud") == 0) {
            if (parse_long(argv[i + 1], 1, 4000000, &baud) != 0) return usage("--baud: expected a positive number");
        } else {
            return usage("unknown option");
        }
    }
    if (i != argc || (fd < 0) == (path == 0)) return usage("give exactly one of --fd and --serial");
    if (path != 0) {
        fd = open(path, O_RDWR | O_NOCTTY);
        if (fd < 0) {
            perror(path);
            return 2;
        }
    }
    if (board_posix_set_serial(fd, baud) != 0) return usage("--baud: not a standard rate");
    rlmpc_controller_run();
}
