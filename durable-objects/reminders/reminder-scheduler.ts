import { DurableObject } from "cloudflare:workers";
import { deliverDue, nextWake } from "../../workers/business/reminders/delivery.ts";
import { tenantScopeFor } from "../../workers/shared/db/tenant-scope.ts";
import { createLogger } from "../../workers/shared/logger.ts";

const TENANT_KEY = "tenantId";

/**
 * One object per tenant (`idFromName(tenantId)`) whose alarm is set to the tenant's earliest due reminder, so a
 * reminder goes out at its minute rather than at the next 5-minute cron. D1 holds the reminders; the object holds
 * only its tenant's id and an alarm. Exactly-once does not rest on there being one object: every send is preceded
 * by a claim in D1 that only one run can win (workers/business/reminders/delivery.ts).
 */
export class ReminderScheduler extends DurableObject<Env> {
  private readonly log = createLogger({ component: "reminder_scheduler" });

  /** Something changed for the tenant (a reminder scheduled or cancelled, the cron's check): re-arm the alarm. */
  async poke(tenantId: string): Promise<void> {
    if ((await this.ctx.storage.get<string>(TENANT_KEY)) !== tenantId) await this.ctx.storage.put(TENANT_KEY, tenantId);
    await this.arm(await nextWake(tenantScopeFor(this.env, tenantId)));
  }

  override async alarm(): Promise<void> {
    const tenantId = await this.ctx.storage.get<string>(TENANT_KEY);
    if (!tenantId) return;
    const log = this.log.child({ tenantId });
    // A throw here makes the runtime retry the alarm; the claims keep a retried run from sending anything twice.
    await this.arm(await deliverDue(this.env, tenantScopeFor(this.env, tenantId), log));
  }

  private async arm(at: number | null): Promise<void> {
    if (at === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(Math.max(at, Date.now()));
  }
}
