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
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define SYST_CSR_ENABLE_TICKINT_CORECLK 7u
#define SYST_MAX 0x00FFFFFFu
#define NVIC_ISER0 REG(0xE000E100u)
#define SCB_ICSR REG(0xE000ED04u)
#define SCB_ICSR_PENDSTSET (1u << 26)

#define SYSCLK_HZ 25000000u
#define BAUD_RATE 115200u
#define NS_PER_TICK 40u /* 1e9 / SYSCLK_HZ */

#define RX_SIZE 2048u /* power of two */

static volatile uint8_t rx_buf[RX_SIZE];
static volatile uint32_t rx_head; /* advanced by the interrupt only */
static volatile uint32_t rx_tail; /* advanced by the main loop only */
static volatile uint32_t rx_dropped;
static volatile uint32_t systick_wraps;

void UART0RX_IRQHandler(void);


void UART0RX_IRQHandler(void)
{
    /* Acknowledge before reading DATA: reading it lets the next byte in at once, and its
     * interrupt would be lost if cleared afterwards (the link then stalls). */
    UART_INT = UART_INT_RX;
    while (UART_STATE & UART_STATE_RXFULL) {
        uint8_t byte = (uint8_t)UART_DATA;
        uint32_t head = rx_head;
        if (head - rx_tail < RX_SIZE) {
            rx_buf[head % RX_SIZE] = byte;
            rx_head = head + 1u;
        } else {
            rx_dropped = rx_dropped + 1u;
        }
    }
    UART_STATE = UART_STATE_OVERRUNS;
}

void SysTick_Handler(void)
{
    systick_wraps = systick_wraps + 1u;
}

void board_init(void)
{
    UART_BAUDDIV = SYSCLK_HZ / BAUD_RATE;
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INTEN;
    NVIC_ISER0 = 1u << UART0_RX_IRQN;
    SYST_RVR = SYST_MAX;
    SYST_CVR = 0u;
    SYST_CSR = SYST_CSR_ENABLE_TICKINT_CORECLK;
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
    size_t n = 0;
    uint32_t tail = rx_tail;
    const uint32_t head = rx_head;
    while (n < cap && tail != head) {
        buf[n++] = rx_buf[tail % RX_SIZE];
        tail++;
    }
    rx_tail = tail;
    return n;
}

uint32_t board_cycles(void)
{
    uint32_t primask, wraps, val;
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    wraps = systick_wraps;
    val = SYST_CVR;
    if (SCB_ICSR & SCB_ICSR_PENDSTSET) { /* wrapped, interrupt not taken yet */
        val = SYST_CVR;
        wraps++;
    }
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
    /* modulo 2^32 throughout: differences stay exact */
    return ((wraps << 24) + (SYST_MAX - val)) * NS_PER_TICK;
}

void board_exit(int code)
{
    cortex_m_semihosting_exit(code);
}
