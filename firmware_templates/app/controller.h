/* rlmpc controller firmware: the board-independent main loop.
 *
 * Serves the serial protocol (docs/protocol.md) with the bundle's solver: HELLO -> INFO,
 * STEP -> ACTION (solve bracketed by board_cycles()), RESET, PING, EXIT; ERROR for rejected
 * frames and requests.  Needs the generated bundle_info.h (rlmpc.codegen.firmware) and the
 * generated protocol header.  No malloc, no printf.
 */
#ifndef RLMPC_CONTROLLER_H
#define RLMPC_CONTROLLER_H

#ifdef __cplusplus
extern "C" {
#endif

/* board_init(), then serve requests until EXIT (board_exit); never returns. */
void rlmpc_controller_run(void) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* RLMPC_CONTROLLER_H */
