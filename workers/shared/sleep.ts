/** Resolves after `ms` milliseconds: a retry's backoff, a poll's interval, a wait for the next push. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
