/* What every Cortex-M board of the rlmpc firmware shares: the reset handler, the default
 * handler of unexpected exceptions, the core exception handlers (weak), and the semihosting
 * exit.  A board's startup.c keeps only its vector table and its device interrupts. */
#ifndef RLMPC_CORTEX_M_H
#define RLMPC_CORTEX_M_H

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
void SysTick_Handler(void);

/* End the program through ARM semihosting (SYS_EXIT_EXTENDED with the code, then plain
 * SYS_EXIT telling success from failure); QEMU needs -semihosting-config
 * enable=on,target=native.  Without a debugger the BKPT faults; then the core is parked. */
void cortex_m_semihosting_exit(int code) __attribute__((noreturn));

#endif
