/* Board support of the POSIX builds (see board.h, board_posix.h): the native host program and
 * the embedded-Linux controller (linux-aarch64).  Serial on a file descriptor (raw termios on
 * a tty), board_cycles() from clock_gettime(CLOCK_MONOTONIC) in nanoseconds. */
#define _DEFAULT_SOURCE /* cfsetspeed, B230400 and above */
#include "board_posix.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define EXIT_LINK_CLOSED 3
#define IDLE_WAIT_MS 1
#define LINGER_NS 50000000L /* 50 ms */

static int serial_fd = -1;
static speed_t serial_speed = 0;

static const struct {
    long baud;
    speed_t speed;
} SPEEDS[] = {
    {9600, B9600}, {19200, B19200}, {38400, B38400}, {57600, B57600}, {115200, B115200},
    {230400, B230400}, {460800, B460800}, {921600, B921600}, {1000000, B1000000},
    {2000000, B2000000},
};

int board_posix_set_serial(int fd, long baud)
{
    size_t i;
    serial_fd = fd;
    serial_speed = 0;
    if (baud == 0) return 0;
    for (i = 0; i < sizeof SPEEDS / sizeof SPEEDS[0]; i++) {
        if (SPEEDS[i].baud == baud) {
            serial_speed = SPEEDS[i].speed;
            return 0;
        }
    }
    return -1;
}

void board_init(void)
{
    struct termios t;
    if (serial_fd < 0) exit(2);
    if (tcgetattr(serial_fd, &t) == 0) { /* a tty: raw 8-bit bytes, no echo, no line editing */
        t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
        t.c_oflag &= ~(tcflag_t)OPOST;
        t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
        t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
        t.c_cflag |= CS8;
        t.c_cc[VMIN] = 1;
        t.c_cc[VTIME] = 0;
        if (serial_speed != 0) {
            t.c_cflag &= ~(tcflag_t)(CSTOPB | CRTSCTS);
            t.c_cflag |= CLOCAL | CREAD;
            (void)cfsetspeed(&t, serial_speed);
        }
        (void)tcsetattr(serial_fd, TCSANOW, &t);
    }
}

void board_uart_write(const uint8_t *data, size_t len)
{
    while (len > 0u) {
        ssize_t n = write(serial_fd, data, len);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            board_exit(EXIT_LINK_CLOSED);
        }
        data += n;
        len -= (size_t)n;
    }
}

size_t board_uart_read_nonblocking(uint8_t *buf, size_t cap)
{
    struct pollfd pfd;
    ssize_t n;
    pfd.fd = serial_fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (poll(&pfd, 1, IDLE_WAIT_MS) <= 0) return 0u;
    if ((pfd.revents & POLLIN) == 0) {
        if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) board_exit(EXIT_LINK_CLOSED);
        return 0u;
    }
    n = read(serial_fd, buf, cap);
    if (n > 0) return (size_t)n;
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 0u;
    board_exit(EXIT_LINK_CLOSED); /* end of file, or EIO on a pty whose other end closed */
}

uint32_t board_cycles(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

void board_exit(int code)
{
    /* A pty discards what its other end has not read yet when this end closes: give the
     * last reply (EXIT's ACK) time to be read. */
    if (serial_fd >= 0 && isatty(serial_fd)) {
        struct timespec linger = {0, LINGER_NS};
        (void)nanosleep(&linger, 0);
    }
    exit(code);
}
