/* Shared start-up, counter, receive ring and exit code of the Cortex-M boards (see cortex_m.h). */
#include <stdint.h>

#include "board.h"
#include "cortex_m.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define SCB_CPACR REG(0xE000ED88u)
#define SCB_ICSR REG(0xE000ED04u)
#define SCB_ICSR_PENDSTSET (1u << 26)
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define SYST_CSR_ENABLE_TICKINT_CORECLK 7u
#define SYST_MAX 0x00FFFFFFu
#define CPACR_CP10_CP11_FULL (0xFu << 20)

/* semihosting (ARM "Semihosting for AArch32 and AArch64", v2) */
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define ADP_STOPPED_RUNTIME_ERROR_UNKNOWN 0x20023u

/* from link.ld */
extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[];

int main(void);

#define WEAK_DEFAULT __attribute__((weak, alias("Default_Handler")))
void NMI_Handler(void) WEAK_DEFAULT;
void HardFault_Handler(void) WEAK_DEFAULT;
void MemManage_Handler(void) WEAK_DEFAULT;
void BusFault_Handler(void) WEAK_DEFAULT;
void UsageFault_Handler(void) WEAK_DEFAULT;
void SVC_Handler(void) WEAK_DEFAULT;
void DebugMon_Handler(void) WEAK_DEFAULT;
void PendSV_Handler(void) WEAK_DEFAULT;

/* Plain word loops: keep GCC from turning them into memcpy/memset calls. */
__attribute__((noreturn, optimize("no-tree-loop-distribute-patterns"))) void Reset_Handler(void)
{
    uint32_t *src, *dst;
    SCB_CPACR |= CPACR_CP10_CP11_FULL; /* CP10/CP11 (FPU): full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    for (src = _sidata, dst = _sdata; dst < _edata;) *dst++ = *src++;
    for (dst = _sbss; dst < _ebss;) *dst++ = 0u;
    board_exit(main());
}

void Default_Handler(void)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    board_exit(128 + (int)(ipsr & 0xFFu));
}

static int semihost(int op, void *arg)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void cortex_m_semihosting_exit(int code)
{
    uint32_t block[2];
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)code;
    (void)semihost(SYS_EXIT_EXTENDED, block);
    /* a host without SYS_EXIT_EXTENDED: plain SYS_EXIT tells success from failure */
    (void)semihost(SYS_EXIT, (void *)(code == 0 ? ADP_STOPPED_APPLICATION_EXIT
                                                : ADP_STOPPED_RUNTIME_ERROR_UNKNOWN));
    for (;;) {
        __asm__ volatile("wfi");
    }
}

/* ---- SysTick counter ---------------------------------------------------------------------- */

static volatile uint32_t systick_wraps;

void SysTick_Handler(void)
{
    systick_wraps = systick_wraps + 1u;
}

void cortex_m_counter_start(void)
{
    SYST_RVR = SYST_MAX;
    SYST_CVR = 0u;
    SYST_CSR = SYST_CSR_ENABLE_TICKINT_CORECLK;
}

uint32_t cortex_m_counter_ticks(void)
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
    return (wraps << 24) + (SYST_MAX - val); /* modulo 2^32 throughout */
}

/* ---- UART receive ring -------------------------------------------------------------------- */

static volatile uint8_t rx_buf[CORTEX_M_RX_SIZE];
static volatile uint32_t rx_head; /* advanced by the interrupt only */
static volatile uint32_t rx_tail; /* advanced by the main loop only */
static volatile uint32_t rx_dropped;

void cortex_m_rx_push(uint8_t byte)
{
    uint32_t head = rx_head;
    if (head - rx_tail < CORTEX_M_RX_SIZE) {
        rx_buf[head % CORTEX_M_RX_SIZE] = byte;
        rx_head = head + 1u;
    } else {
        rx_dropped = rx_dropped + 1u;
    }
}

size_t cortex_m_rx_pop(uint8_t *buf, size_t cap)
{
    size_t n = 0;
    uint32_t tail = rx_tail;
    uint32_t head = rx_head;
    if (tail == head) {
        /* nothing received: sleep until an interrupt (the UART's, or SysTick's).  Interrupts are
         * masked around the check so that a byte arriving between the check and WFI still wakes
         * it (WFI wakes on a pending interrupt even when masked); the handler runs after CPSIE.
         * An emulator then idles instead of spinning on the empty buffer, which on QEMU leaves
         * the host's cores to the link (see docs/benchmarks.md, learning through the device). */
        __asm__ volatile("cpsid i" ::: "memory");
        if (rx_head == rx_tail) __asm__ volatile("wfi" ::: "memory");
        __asm__ volatile("cpsie i" ::: "memory");
        head = rx_head;
    }
    while (n < cap && tail != head) {
        buf[n++] = rx_buf[tail % CORTEX_M_RX_SIZE];
        tail++;
    }
    rx_tail = tail;
    return n;
}

uint32_t cortex_m_rx_dropped(void)
{
    return rx_dropped;
}
