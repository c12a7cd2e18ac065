/* Startup of the mps2-an386 board (Cortex-M4F): vector table, reset handler, default
 * handlers.  No vendor SDK and no C runtime start files (link with -nostartfiles).
 *
 * Reset: enable the FPU (CPACR) before any floating-point instruction can run, copy .data
 * from its load address, zero .bss, call main(); its return value ends the program
 * through board_exit().  No static constructors (C only), no heap set-up.
 * Unexpected exceptions end the program with exit code 128 + exception number
 * (e.g. 131: HardFault), so an emulator run fails fast instead of hanging.
 */
#include <stdint.h>

#include "board.h"

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define CPACR_CP10_CP11_FULL (0xFu << 20)
#define N_IRQ 32 /* QEMU's mps2-an385/an386 NVIC */

/* from link.ld */
extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _estack[];

int main(void);
void Reset_Handler(void);
void Default_Handler(void);

/* Handlers a program may define; the default ends the program. */
#define WEAK_DEFAULT __attribute__((weak, alias("Default_Handler")))
void NMI_Handler(void) WEAK_DEFAULT;
void HardFault_Handler(void) WEAK_DEFAULT;
void MemManage_Handler(void) WEAK_DEFAULT;
void BusFault_Handler(void) WEAK_DEFAULT;
void UsageFault_Handler(void) WEAK_DEFAULT;
void SVC_Handler(void) WEAK_DEFAULT;
void DebugMon_Handler(void) WEAK_DEFAULT;
void PendSV_Handler(void) WEAK_DEFAULT;
void SysTick_Handler(void) WEAK_DEFAULT;
void UART0RX_IRQHandler(void) WEAK_DEFAULT;   /* IRQ 0 */
void UART0TX_IRQHandler(void) WEAK_DEFAULT;   /* IRQ 1 */
void UART1RX_IRQHandler(void) WEAK_DEFAULT;   /* IRQ 2 */
void UART1TX_IRQHandler(void) WEAK_DEFAULT;   /* IRQ 3 */
void TIMER0_IRQHandler(void) WEAK_DEFAULT;    /* IRQ 8 */
void TIMER1_IRQHandler(void) WEAK_DEFAULT;    /* IRQ 9 */
void DUALTIMER_IRQHandler(void) WEAK_DEFAULT; /* IRQ 10 */
void UARTOVF_IRQHandler(void) WEAK_DEFAULT;   /* IRQ 12: UART 0-2 overruns */

typedef void (*vector)(void);

__attribute__((section(".isr_vector"), used)) static const vector vectors[16 + N_IRQ] = {
    (vector)(uintptr_t)_estack, /* initial stack pointer */
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, 0, 0, 0, /* reserved */
    SVC_Handler,
    DebugMon_Handler,
    0, /* reserved */
    PendSV_Handler,
    SysTick_Handler,
    /* external interrupts (AN386 numbering); the rest default */
    [16 + 0] = UART0RX_IRQHandler,
    [16 + 1] = UART0TX_IRQHandler,
    [16 + 2] = UART1RX_IRQHandler,
    [16 + 3] = UART1TX_IRQHandler,
    [16 + 4] = Default_Handler, [16 + 5] = Default_Handler, [16 + 6] = Default_Handler,
    [16 + 7] = Default_Handler,
    [16 + 8] = TIMER0_IRQHandler,
    [16 + 9] = TIMER1_IRQHandler,
    [16 + 10] = DUALTIMER_IRQHandler,
    [16 + 11] = Default_Handler,
    [16 + 12] = UARTOVF_IRQHandler,
    [16 + 13] = Default_Handler, [16 + 14] = Default_Handler, [16 + 15] = Default_Handler,
    [16 + 16] = Default_Handler, [16 + 17] = Default_Handler, [16 + 18] = Default_Handler,
    [16 + 19] = Default_Handler, [16 + 20] = Default_Handler, [16 + 21] = Default_Handler,
    [16 + 22] = Default_Handler, [16 + 23] = Default_Handler, [16 + 24] = Default_Handler,
    [16 + 25] = Default_Handler, [16 + 26] = Default_Handler, [16 + 27] = Default_Handler,
    [16 + 28] = Default_Handler, [16 + 29] = Default_Handler, [16 + 30] = Default_Handler,
    [16 + 31] = Default_Handler,
};

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
