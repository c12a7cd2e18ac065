/* Board support of the STM32F405 (Cortex-M4F), e.g. a Netduino Plus 2, and of its QEMU model
 * "-M netduinoplus2".  No vendor SDK: the few registers used are defined below (RM0090).
 *
 * - USART1 (0x40011000, IRQ 37) on PA9 (TX) / PA10 (RX), alternate function 7: 115200 8N1,
 *   blocking transmit, interrupt-driven receive (RXNE) into a ring buffer.  USART1 is the
 *   U(S)ART that QEMU's netduinoplus2 connects to the first "-serial" (serial_hd(0));
 *   -serial number 2..6 are USART2, USART3, UART4, UART5, USART6.
 *   QEMU drops bytes that arrive before UE and RE are set: the host repeats HELLO until
 *   INFO comes back (rlmpc.codegen.firmware_link.FirmwareLink.hello).
 *   There is no separate interrupt acknowledge on this USART: reading DR clears RXNE (and,
 *   after the SR read, an overrun ORE), which drops the interrupt request.
 * - SysTick on the core clock (CLKSOURCE = processor), free-running over 2^24 ticks, wraps
 *   counted in its interrupt.  board_cycles() returns core clock ticks = CPU cycles on a
 *   real chip (168 MHz with the PLL below, 16 MHz on the reset HSI clock).  In QEMU the core
 *   clock is fixed at 168 MHz of virtual time; under "-icount shift=0" (1 ns per
 *   instruction) one tick = 1e9 / 168e6 ns ≈ 5.95 ns ≈ 6 instructions, so
 *   instructions ≈ cycles × 125 / 21 (resolution ~6 instructions, repeatable).
 *   The DWT cycle counter is not used: it reads 0 in QEMU.
 * - Semihosting SYS_EXIT_EXTENDED: ends QEMU with the exit code when it runs with
 *   "-semihosting-config enable=on,target=native".  On a real board without a debugger
 *   the BKPT instruction faults instead (board_exit then parks the core).
 *
 * Clock tree: what QEMU needs vs. a real board.
 * - QEMU does not model the RCC (its registers read 0, writes are ignored), the GPIOs or
 *   the USART baud rate generator (BRR is ignored); SYSCLK is 168 MHz from reset.  Nothing
 *   here may wait on an RCC ready bit without a bound.
 * - A real STM32F405 starts on the 16 MHz HSI.  The default build stays there: USART1's
 *   BRR is computed for PCLK2 = 16 MHz and costs are 16 MHz cycles.  Define
 *   RLMPC_STM32_HSE_HZ (the crystal, e.g. -DRLMPC_STM32_HSE_HZ=25000000 on a Netduino Plus
 *   2, 8000000 on most Discovery boards; a multiple of 1 MHz between 2 and 63 MHz) to run
 *   HSE -> PLL (VCO 336 MHz) -> SYSCLK 168 MHz, AHB 168, APB1 42, APB2 84 MHz, USB 48 MHz,
 *   5 flash wait states with prefetch and caches (VOS scale 1 is the F405's reset value).
 *   If the HSE or the PLL does not become ready within a bounded wait (no crystal; QEMU),
 *   the HSI is kept and the baud rate computed for it.
 */
#include "board.h"
#include "cortex_m.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

/* RCC */
#define RCC_BASE 0x40023800u
#define RCC_CR REG(RCC_BASE + 0x00u)
#define RCC_PLLCFGR REG(RCC_BASE + 0x04u)
#define RCC_CFGR REG(RCC_BASE + 0x08u)
#define RCC_AHB1ENR REG(RCC_BASE + 0x30u)
#define RCC_APB2ENR REG(RCC_BASE + 0x44u)
#define RCC_CR_HSEON (1u << 16)
#define RCC_CR_HSERDY (1u << 17)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_PLLCFGR_SRC_HSE (1u << 22)
#define RCC_CFGR_SW_PLL 2u
#define RCC_CFGR_SWS_MASK (3u << 2)
#define RCC_CFGR_SWS_PLL (2u << 2)
#define RCC_CFGR_PPRE1_DIV4 (5u << 10)
#define RCC_CFGR_PPRE2_DIV2 (4u << 13)
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_APB2ENR_USART1EN (1u << 4)

/* Flash interface */
#define FLASH_ACR REG(0x40023C00u)
#define FLASH_ACR_LATENCY_5WS 5u
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ICEN (1u << 9)
#define FLASH_ACR_DCEN (1u << 10)

/* GPIOA: PA9 = USART1_TX, PA10 = USART1_RX (AF7) */
#define GPIOA_BASE 0x40020000u
#define GPIOA_MODER REG(GPIOA_BASE + 0x00u)
#define GPIOA_OSPEEDR REG(GPIOA_BASE + 0x08u)
#define GPIOA_PUPDR REG(GPIOA_BASE + 0x0Cu)
#define GPIOA_AFRH REG(GPIOA_BASE + 0x24u)
#define GPIO_MODE_AF 2u
#define GPIO_SPEED_HIGH 2u
#define GPIO_PULL_UP 1u
#define GPIO_AF_USART1 7u

/* USART1 */
#define USART1_BASE 0x40011000u
#define USART_SR REG(USART1_BASE + 0x00u)
#define USART_DR REG(USART1_BASE + 0x04u)
#define USART_BRR REG(USART1_BASE + 0x08u)
#define USART_CR1 REG(USART1_BASE + 0x0Cu)
#define USART_CR2 REG(USART1_BASE + 0x10u)
#define USART_CR3 REG(USART1_BASE + 0x14u)
#define USART_SR_ORE (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TC (1u << 6)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_UE (1u << 13)
#define USART1_IRQN 37u

/* Cortex-M4 system registers */
#define NVIC_ISER(n) REG(0xE000E100u + 4u * (n))

#define HSI_HZ 16000000u
#define PLL_SYSCLK_HZ 168000000u
#define BAUD_RATE 115200u
#define READY_WAIT 100000u /* polls of an RCC ready bit before giving up */

void USART1_IRQHandler(void);

void USART1_IRQHandler(void)
{
    /* SR then DR: reading DR takes the byte, clears RXNE (and ORE) and so the request. */
    while (USART_SR & (USART_SR_RXNE | USART_SR_ORE)) {
        uint8_t byte = (uint8_t)USART_DR;
        cortex_m_rx_push(byte);
    }
}

static int wait_set(volatile uint32_t *reg, uint32_t mask, uint32_t value)
{
    uint32_t i;
    for (i = 0; i < READY_WAIT; i++) {
        if ((*reg & mask) == value) return 1;
    }
    return 0;
}

/* The APB2 clock (USART1's) after setting up the clock tree. */
static uint32_t clock_init(void)
{
#ifdef RLMPC_STM32_HSE_HZ
    const uint32_t pllm = (uint32_t)(RLMPC_STM32_HSE_HZ) / 1000000u; /* VCO input 1 MHz */
    const uint32_t plln = 336u, pllq = 7u;                           /* VCO 336, USB 48 MHz */
    RCC_CR |= RCC_CR_HSEON;
    if (!wait_set(&RCC_CR, RCC_CR_HSERDY, RCC_CR_HSERDY)) {
        RCC_CR &= ~RCC_CR_HSEON;
        return HSI_HZ;
    }
    RCC_PLLCFGR = pllm | (plln << 6) | (0u << 16) /* PLLP = 2 */ | RCC_PLLCFGR_SRC_HSE | (pllq << 24);
    RCC_CR |= RCC_CR_PLLON;
    if (!wait_set(&RCC_CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) {
        RCC_CR &= ~(RCC_CR_PLLON | RCC_CR_HSEON);
        return HSI_HZ;
    }
    /* wait states before the clock goes up; prescalers before switching */
    FLASH_ACR = FLASH_ACR_LATENCY_5WS | FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN;
    RCC_CFGR = RCC_CFGR_PPRE1_DIV4 | RCC_CFGR_PPRE2_DIV2; /* HPRE = 1, still on HSI */
    RCC_CFGR = RCC_CFGR_PPRE1_DIV4 | RCC_CFGR_PPRE2_DIV2 | RCC_CFGR_SW_PLL;
    if (!wait_set(&RCC_CFGR, RCC_CFGR_SWS_MASK, RCC_CFGR_SWS_PLL)) {
        RCC_CFGR = 0u; /* back to HSI, no prescalers */
        RCC_CR &= ~(RCC_CR_PLLON | RCC_CR_HSEON);
        return HSI_HZ;
    }
    return PLL_SYSCLK_HZ / 2u;
#else
    (void)wait_set;
    return HSI_HZ; /* reset clock tree: HSI 16 MHz, no prescalers */
#endif
}

void board_init(void)
{
    const uint32_t pclk2 = clock_init();
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
    RCC_APB2ENR |= RCC_APB2ENR_USART1EN;
    (void)RCC_APB2ENR; /* read back: the clock is on before the first peripheral access */
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 18)) | (GPIO_MODE_AF << 18) | (GPIO_MODE_AF << 20);
    GPIOA_OSPEEDR = (GPIOA_OSPEEDR & ~(0xFu << 18)) | (GPIO_SPEED_HIGH << 18) | (GPIO_SPEED_HIGH << 20);
    GPIOA_PUPDR = (GPIOA_PUPDR & ~(0xFu << 18)) | (GPIO_PULL_UP << 20); /* idle-high RX */
    GPIOA_AFRH = (GPIOA_AFRH & ~(0xFFu << 4)) | (GPIO_AF_USART1 << 4) | (GPIO_AF_USART1 << 8);

    USART_CR1 = 0u;
    USART_CR2 = 0u; /* 1 stop bit */
    USART_CR3 = 0u; /* no flow control, no DMA */
    USART_BRR = (pclk2 + BAUD_RATE / 2u) / BAUD_RATE; /* oversampling 16: mantissa.fraction */
    USART_CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE; /* 8N1 */
    NVIC_ISER(USART1_IRQN / 32u) = 1u << (USART1_IRQN % 32u);

    cortex_m_counter_start();
    __asm__ volatile("cpsie i" ::: "memory");
}

void board_uart_write(const uint8_t *data, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        while (!(USART_SR & USART_SR_TXE)) {
        }
        USART_DR = data[i];
    }
}

size_t board_uart_read_nonblocking(uint8_t *buf, size_t cap)
{
    return cortex_m_rx_pop(buf, cap);
}

uint32_t board_cycles(void)
{
    return cortex_m_counter_ticks(); /* core clock ticks */
}

void board_exit(int code)
{
    uint32_t i;
    /* let the last byte (e.g. EXIT's ACK) leave the shift register; bounded if the USART is off */
    for (i = 0; i < READY_WAIT && !(USART_SR & USART_SR_TC); i++) {
    }
    cortex_m_semihosting_exit(code);
}
