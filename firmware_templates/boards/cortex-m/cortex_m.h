/* What every Cortex-M board of the rlmpc firmware shares: the reset handler, the default
 * handler of unexpected exceptions, the core exception handlers (weak), the SysTick counter,
 * the UART receive ring and the semihosting exit.  A board's startup.c keeps only its vector
 * table and its device interrupts; its board.c only its clocks and UART registers. */
#ifndef RLMPC_CORTEX_M_H
#define RLMPC_CORTEX_M_H

#include <stddef.h>
#include <stdint.h>

/* Size of the UART receive ring: a power of two holding more than a whole request frame
 * (MAX_FRAME = 522 bytes) with room to spare.  Under QEMU an emulated UART hands over the next
 * byte as soon as the data register is read, so a burst interrupts the main loop back to back;
 * with 256 bytes a 512-byte PING overflowed the STM32 ring now and then (12 of 100 lost). */
#define CORTEX_M_RX_SIZE 2048u

/* Enable the FPU (CPACR), copy .data from its load address, zero .bss, call main(); its
 * return value ends the program through board_exit().  Symbols from the board's link.ld:
 * _sidata, _sdata, _edata, _sbss, _ebss. */
void Reset_Handler(void) __attribute__((noreturn));

/* Unexpected exception or interrupt: board_exit(128 + exception number), e.g. 131 for a
 * HardFault, so that an emulator run fails fast instead of hanging. */
void Default_Handler(void);

/* Core exceptions; weak aliases of Default_Handler that a program may override. */
void NMI_Handler(void);
void HardFault_Handler(void);
void MemManage_Handler(void);
void BusFault_Handler(void);
void UsageFault_Handler(void);
void SVC_Handler(void);
void DebugMon_Handler(void);
void PendSV_Handler(void);

/* A vector table entry, and the 16 entries every Cortex-M table starts with: the initial
 * stack pointer and the core exceptions (a board's startup.c appends its interrupts). */
typedef void (*cortex_m_vector)(void);
#define CORTEX_M_CORE_VECTORS(stack_top)                                                        \
    (cortex_m_vector)(uintptr_t)(stack_top), Reset_Handler, NMI_Handler, HardFault_Handler,     \
        MemManage_Handler, BusFault_Handler, UsageFault_Handler, 0, 0, 0, 0, /* reserved */    \
        SVC_Handler, DebugMon_Handler, 0 /* reserved */, PendSV_Handler, SysTick_Handler

/* SysTick as a free-running counter of core clock ticks: reload 2^24 - 1, its interrupt
 * (SysTick_Handler, defined here) counts the wraps.  Call once from board_init(). */
void cortex_m_counter_start(void);
void SysTick_Handler(void);

/* Core clock ticks since cortex_m_counter_start(), modulo 2^32 (differences stay exact);
 * safe against a wrap between reading the wrap count and the counter. */
uint32_t cortex_m_counter_ticks(void);

/* The receive ring: the UART's receive interrupt pushes (a full ring drops the byte and
 * counts it), the main loop pops.  Single producer, single consumer: no lock needed. */
void cortex_m_rx_push(uint8_t byte);
size_t cortex_m_rx_pop(uint8_t *buf, size_t cap);
uint32_t cortex_m_rx_dropped(void);

/* End the program through ARM semihosting (SYS_EXIT_EXTENDED with the code, then plain
 * SYS_EXIT telling success from failure); QEMU needs -semihosting-config
 * enable=on,target=native.  Without a debugger the BKPT faults; then the core is parked. */
void cortex_m_semihosting_exit(int code) __attribute__((noreturn));

#endif
