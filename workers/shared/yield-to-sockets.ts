import { sleep } from "./sleep.ts";

/**
 * Resolves once workerd has polled its sockets. Its event loop (kj) asks the kernel for I/O only when no event is
 * ready, so a chain of in-process calls — another object, D1, this object's own commits, each resolving straight into
 * the next — runs to its end before any call's frame is read. A timer fires only after that poll: awaiting this between
 * the steps of a call's setup or end lets every other call's frames through between them (test/bench/FINDINGS.md, item 20).
 */
export const yieldToSockets = (): Promise<void> => sleep(0);
