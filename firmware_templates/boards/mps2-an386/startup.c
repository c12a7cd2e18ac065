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
#include "cortex_m.h"

#define N_IRQ 32 /* QEMU's mps2-an385/an386 NVIC */

/* from link.ld */
extern uint32_t _estack[];

/* Device interrupts a program may define; unused ones end the program (cortex_m.h). */
#define WEAK_DEFAULT __attribute__((weak, alias("Unused_IRQHandler")))
void Unused_IRQHandler(void);
void UART0RX_IRQHandler(void) WEAK_DEFAULT;   /* IRQ 0 */
void UART0TX_IRQHandler(void) WEAK_DEFAULT;   /* IRQ 1 */
void UART1RX_IRQHandler(void) WEAK_DEFAULT;   /* IRQ 2 */
void UART1TX_IRQHandler(void) WEAK_DEFAULT;   /* IRQ 3 */
void TIMER0_IRQHandler(void) WEAK_DEFAULT;    /* IRQ 8 */
void TIMER1_IRQHandler(void) WEAK_DEFAULT;    /* IRQ 9 */
void DUALTIMER_IRQHandler(void) WEAK_DEFAULT; /* IRQ 10 */
void UARTOVF_IRQHandler(void) WEAK_DEFAULT;   /* IRQ 12: UART 0-2 overruns */

__attribute__((section(".isr_vector"), used)) static const cortex_m_vector vectors[16 + N_IRQ] = {
    CORTEX_M_CORE_VECTORS(_estack),
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

void Unused_IRQHandler(void)
{
    Default_Handler();
}
