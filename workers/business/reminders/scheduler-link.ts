/**
 * The tenant's reminder scheduler object (`idFromName(tenantId)`), told to re-read the tenant's earliest due
 * reminder after every change: it sets its alarm to that time. The cron pokes it too, so a lost poke delays a
 * reminder by at most one cron period rather than forever.
 */
export function pokeScheduler(env: Env, tenantId: string): Promise<void> {
  return env.REMINDER_SCHEDULER.get(env.REMINDER_SCHEDULER.idFromName(tenantId)).poke(tenantId);
}
