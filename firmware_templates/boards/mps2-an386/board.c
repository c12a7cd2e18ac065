/* Board support of the emulated Cortex-M4F "mps2-an386" (QEMU -M mps2-an386): ARM MPS2
 * with the AN386 FPGA image.  No vendor SDK: registers are written directly.
 *
 * - UART0 (CMSDK APB UART at 0x40004000, RX interrupt = IRQ 0): 115200 8N1, blocking
 *   transmit, interrupt-driven receive into a ring buffer.
 * - SysTick (core clock 25 MHz) free-running over 2^24 ticks, wraps counted in its interrupt.
 *   board_cycles() returns ticks x 40, i.e. nanoseconds of the 25 MHz clock.  Under
 *   QEMU "-icount shift=0" virtual time advances 1 ns per instruction, so these are exact,
 *   repeatable instruction counts (resolution 40 instructions; one tick = 40 instructions).
 *   The DWT cycle counter is not usable: it reads 0 in QEMU.
 * - Semihosting SYS_EXIT_EXTENDED: ends QEMU with the exit code when it runs with
 *   "-semihosting-config enable=on,target=native".  On real hardware without a debugger
 *   the BKPT instruction faults instead.
 */
#include "board.h"
#include "cortex_m.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

/* CMSDK APB UART0 */
#define UART0_BASE 0x40004000u
#define UART_DATA REG(UART0_BASE + 0x00u)
#define UART_STATE REG(UART0_BASE + 0x04u)
#define UART_CTRL REG(UART0_BASE + 0x08u)
#define UART_INT REG(UART0_BASE + 0x0Cu) /* read: INTSTATUS; write 1s: INTCLEAR */
#define UART_BAUDDIV REG(UART0_BASE + 0x10u)
#define UART_STATE_TXFULL (1u << 0)
#define UART_STATE_RXFULL (1u << 1)
#define UART_STATE_OVERRUNS (3u << 2) /* TX, RX overrun (write 1 to clear) */
#define UART_CTRL_TX_EN (1u << 0)
#define UART_CTRL_RX_EN (1u << 1)
#define UART_CTRL_RX_INTEN (1u << 3)
#define UART_INT_RX (1u << 1)
#define UART0_RX_IRQN 0u

/* Cortex-M4 system registers */
#define NVIC_ISER0 REG(0xE000E100u)

#define SYSCLK_HZ 25000000u
#define BAUD_RATE 115200u
#define NS_PER_TICK 40u /* 1e9 / SYSCLK_HZ */

void UART0RX_IRQHandler(void);

void UART0RX_IRQHandler(void)
{
    /* Acknowledge before reading DATA: reading it lets the next byte in at once, and its
     * interrupt would be lost if cleared afterwards (the link then stalls). */
    UART_INT = UART_INT_RX;
    while (UART_STATE & UART_STATE_RXFULL) {
        uint8_t byte = (uint8_t)UART_DATA;
        cortex_m_rx_push(byte);
    }
    UART_STATE = UART_STATE_OVERRUNS;
}

void board_init(void)
{
    UART_BAUDDIV = SYSCLK_HZ / BAUD_RATE;
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INTEN;
    NVIC_ISER0 = 1u << UART0_RX_IRQN;
    cortex_m_counter_start();
    __asm__ volatile("cpsie i" ::: "memory");
}

void board_uart_write(const uint8_t *data, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        while (UART_STATE & UART_STATE_TXFULL) {
        }
        UART_DATA = data[i];
    }
}

size_t board_uart_read_nonblocking(uint8_t *buf, size_t cap)
{
    return cortex_m_rx_pop(buf, cap);
}

uint32_t board_cycles(void)
{
    return cortex_m_counter_ticks() * NS_PER_TICK; /* modulo 2^32: differences stay exact */
}

void board_exit(int code)
{
    cortex_m_semihosting_exit(code);
}
