/* Board support API of the rlmpc firmware: what a board offers to the control loop,
 * the serial protocol and the benchmarks.  Every board (boards/mps2-an386, boards/host;
 * later an STM32F405 on netduinoplus2) implements exactly these functions.
 *
 * Single-threaded use: call everything from the main loop, never from an interrupt.
 */
#ifndef RLMPC_BOARD_H
#define RLMPC_BOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Clocks, the serial port (interrupt-driven receive) and the cycle counter; enables
 * interrupts.  Call once, first thing in main. */
void board_init(void);

/* Send len bytes; blocks until the last one is handed to the UART. */
void board_uart_write(const uint8_t *data, size_t len);

/* Move up to cap received bytes into buf; never blocks.  Returns how many were moved
 * (0: none pending).  Bytes that arrive while the receive buffer is full are dropped. */
size_t board_uart_read_nonblocking(uint8_t *buf, size_t cap);

/* Free-running 32-bit counter; differences (unsigned, modulo 2^32) measure elapsed time.
 * Its unit is board-specific (mps2-an386: nanoseconds of the 25 MHz SysTick clock, which
 * under QEMU -icount shift=0 are exactly instructions; host: nanoseconds of
 * CLOCK_MONOTONIC). */
uint32_t board_cycles(void);

/* End the program with an exit code (on emulated boards: ends the emulator).  Does not return. */
void board_exit(int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* RLMPC_BOARD_H */
