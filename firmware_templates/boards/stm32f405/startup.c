/* Startup of the stm32f405 board (STM32F405, Cortex-M4F; QEMU -M netduinoplus2): vector
 * table, reset handler, default handlers.  No vendor SDK and no C runtime start files
 * (link with -nostartfiles).
 *
 * Reset: enable the FPU (CPACR) before any floating-point instruction can run, copy .data
 * from its load address in flash, zero .bss, call main(); its return value ends the program
 * through board_exit().  No static constructors (C only), no heap set-up.
 * Unexpected exceptions and interrupts end the program with exit code 128 + exception
 * number (e.g. 131: HardFault; 16 + n: IRQ n), so an emulator run fails fast instead of
 * hanging.
 *
 * The table has the STM32F405's 82 interrupt lines (RM0090 table 61: IRQ 0 WWDG ... IRQ 81
 * FPU); only the U(S)ART lines are named, board.c uses USART1 (IRQ 37).  The clock tree is
 * set up in board_init(), not here (no SystemInit()).
 */
#include <stdint.h>

#include "board.h"
#include "cortex_m.h"

#define N_IRQ 82 /* STM32F405/407 */

/* from link.ld */
extern uint32_t _estack[];

/* Device interrupts a program may define; unused ones end the program (cortex_m.h). */
#define WEAK_DEFAULT __attribute__((weak, alias("Unused_IRQHandler")))
void Unused_IRQHandler(void);
void USART1_IRQHandler(void) WEAK_DEFAULT; /* IRQ 37 */
void USART2_IRQHandler(void) WEAK_DEFAULT; /* IRQ 38 */
void USART3_IRQHandler(void) WEAK_DEFAULT; /* IRQ 39 */
void UART4_IRQHandler(void) WEAK_DEFAULT; /* IRQ 52 */
void UART5_IRQHandler(void) WEAK_DEFAULT; /* IRQ 53 */
void USART6_IRQHandler(void) WEAK_DEFAULT; /* IRQ 71 */

__attribute__((section(".isr_vector"), used)) static const cortex_m_vector vectors[16 + N_IRQ] = {
    CORTEX_M_CORE_VECTORS(_estack),
    /* external interrupts (STM32F405 numbering) */
    [16 + 0] = Default_Handler, [16 + 1] = Default_Handler, [16 + 2] = Default_Handler,
    [16 + 3] = Default_Handler, [16 + 4] = Default_Handler, [16 + 5] = Default_Handler,
    [16 + 6] = Default_Handler, [16 + 7] = Default_Handler, [16 + 8] = Default_Handler,
    [16 + 9] = Default_Handler, [16 + 10] = Default_Handler, [16 + 11] = Default_Handler,
    [16 + 12] = Default_Handler, [16 + 13] = Default_Handler, [16 + 14] = Default_Handler,
    [16 + 15] = Default_Handler, [16 + 16] = Default_Handler, [16 + 17] = Default_Handler,
    [16 + 18] = Default_Handler, [16 + 19] = Default_Handler, [16 + 20] = Default_Handler,
    [16 + 21] = Default_Handler, [16 + 22] = Default_Handler, [16 + 23] = Default_Handler,
    [16 + 24] = Default_Handler, [16 + 25] = Default_Handler, [16 + 26] = Default_Handler,
    [16 + 27] = Default_Handler, [16 + 28] = Default_Handler, [16 + 29] = Default_Handler,
    [16 + 30] = Default_Handler, [16 + 31] = Default_Handler, [16 + 32] = Default_Handler,
    [16 + 33] = Default_Handler, [16 + 34] = Default_Handler, [16 + 35] = Default_Handler,
    [16 + 36] = Default_Handler,
    [16 + 37] = USART1_IRQHandler,
    [16 + 38] = USART2_IRQHandler,
    [16 + 39] = USART3_IRQHandler,
    [16 + 40] = Default_Handler, [16 + 41] = Default_Handler, [16 + 42] = Default_Handler,
    [16 + 43] = Default_Handler, [16 + 44] = Default_Handler, [16 + 45] = Default_Handler,
    [16 + 46] = Default_Handler, [16 + 47] = Default_Handler, [16 + 48] = Default_Handler,
    [16 + 49] = Default_Handler, [16 + 50] = Default_Handler, [16 + 51] = Default_Handler,
    [16 + 52] = UART4_IRQHandler,
    [16 + 53] = UART5_IRQHandler,
    [16 + 54] = Default_Handler, [16 + 55] = Default_Handler, [16 + 56] = Default_Handler,
    [16 + 57] = Default_Handler, [16 + 58] = Default_Handler, [16 + 59] = Default_Handler,
    [16 + 60] = Default_Handler, [16 + 61] = Default_Handler, [16 + 62] = Default_Handler,
    [16 + 63] = Default_Handler, [16 + 64] = Default_Handler, [16 + 65] = Default_Handler,
    [16 + 66] = Default_Handler, [16 + 67] = Default_Handler, [16 + 68] = Default_Handler,
    [16 + 69] = Default_Handler, [16 + 70] = Default_Handler,
    [16 + 71] = USART6_IRQHandler,
    [16 + 72] = Default_Handler, [16 + 73] = Default_Handler, [16 + 74] = Default_Handler,
    [16 + 75] = Default_Handler, [16 + 76] = Default_Handler, [16 + 77] = Default_Handler,
    [16 + 78] = Default_Handler, [16 + 79] = Default_Handler, [16 + 80] = Default_Handler,
    [16 + 81] = Default_Handler,
};

void Unused_IRQHandler(void)
{
    Default_Handler();
}
