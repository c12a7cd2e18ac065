/* What the POSIX host build adds to boards/board.h.
 *
 * The serial port is a file descriptor (a pty master, a serial device, a socket) given on the
 * command line by main_host.c.  board_uart_read_nonblocking() returns at once when bytes are
 * pending and otherwise waits for the first one at most 1 ms (so an idle loop does not spin a
 * CPU).  When the other end closes the link, the program ends with exit code 3.  On a tty,
 * board_exit() lingers 50 ms so that the last reply (EXIT's ACK) can still be read.
 */
#ifndef RLMPC_BOARD_HOST_H
#define RLMPC_BOARD_HOST_H

#include "board.h"

/* The serial file descriptor; call before board_init(). */
void board_host_set_serial(int fd);

#endif
