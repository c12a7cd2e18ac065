/* Board self-test: echo every byte received on the UART (interrupt-driven receive)
 * until a NUL byte arrives, then exit with code 0 (semihosting).  Exercises
 * board_init, board_uart_read_nonblocking, board_uart_write and board_exit. */
#include <stddef.h>
#include <stdint.h>

#include "board.h"

int main(void)
{
    uint8_t buf[32];
    board_init();
    board_uart_write((const uint8_t *)"ready\n", 6);
    for (;;) {
        size_t n = board_uart_read_nonblocking(buf, sizeof buf), i;
        for (i = 0; i < n; i++) {
            if (buf[i] == 0u) return 0;
            board_uart_write(&buf[i], 1);
        }
    }
}
