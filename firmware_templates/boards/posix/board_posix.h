/* What the POSIX boards (host, linux-aarch64) add to boards/board.h.
 *
 * The serial port is a file descriptor (a pty, a serial device such as /dev/ttyS0 or
 * /dev/ttyACM0, a socket) given on the command line by main.c.  On a tty, board_init() puts
 * it in raw 8N1 mode and, if a baud rate was given, sets it.  board_uart_read_nonblocking()
 * returns at once when bytes are pending and otherwise waits for the first one at most 1 ms
 * (so an idle loop does not spin a CPU).  When the other end closes the link, the program ends
 * with exit code 3.  On a tty, board_exit() lingers 50 ms so that the last reply (EXIT's ACK)
 * can still be read.
 */
#ifndef RLMPC_BOARD_POSIX_H
#define RLMPC_BOARD_POSIX_H

#include "board.h"

/* The serial file descriptor and its baud rate (0: leave the line speed as it is);
 * call before board_init().  Returns 0, or -1 for a baud rate termios does not offer. */
int board_posix_set_serial(int fd, long baud);

#endif
