/** A bench's `--name value` option from its command line, or `fallback` when it is not given. */
export function option(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? (process.argv[index + 1] ?? fallback) : fallback;
}

/**
 * Wrangler at `error` level (or `BENCH_WRANGLER_LOG`'s) for the workers a bench starts next: it echoes every request
 * line otherwise, thousands at 500 calls. Call it before `unstable_startWorker`: wrangler's dev server reads the level
 * when it starts.
 */
export function quietWrangler(): void {
  process.env.WRANGLER_LOG = process.env.BENCH_WRANGLER_LOG ?? "error";
}
