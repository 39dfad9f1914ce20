/**
 * Whether a (possibly drizzle-wrapped) D1 error is SQLite's UNIQUE failure on `column` ("table.column"): a write that
 * lost a race with another for the same unique value, which a route answers as the conflict it checked for.
 */
export function uniqueViolation(error: unknown, column: string): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause)
    if (cause.message.includes("UNIQUE constraint failed") && cause.message.includes(column)) return true;
  return false;
}
