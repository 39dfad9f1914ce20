import { env } from "cloudflare:workers";
import { expect } from "vitest";

interface Row {
  customer_id: string;
  balance: number;
  direction: "debit" | "credit" | null;
  amount: number | null;
  balance_after: number | null;
}

/**
 * The books add up, for every customer of the tenant (of every tenant when none is named): the stored balance equals the ledger's debits minus its
 * credits, and each entry's `balance_after` is the running sum up to it (in the order the entries were written).
 * Read with SQL of its own rather than the engine, so a fault in the engine's reads cannot hide one in its writes.
 */
export async function expectLedgerInvariant(tenantId?: string): Promise<void> {
  const { results } = await env.DB.prepare(
    `select c.id as customer_id, c.balance, l.direction, l.amount, l.balance_after
       from customers c left join ledger_entries l on l.customer_id = c.id and l.tenant_id = c.tenant_id
      where ?1 is null or c.tenant_id = ?1
      order by c.id, l.rowid`,
  )
    .bind(tenantId ?? null)
    .all<Row>();
  const running = new Map<string, { stored: number; sum: number }>();
  for (const row of results) {
    const account = running.get(row.customer_id) ?? { stored: row.balance, sum: 0 };
    running.set(row.customer_id, account);
    if (row.direction === null || row.amount === null) continue;
    account.sum += row.direction === "debit" ? row.amount : -row.amount;
    expect(row.balance_after, `running balance of ${row.customer_id}`).toBe(account.sum);
  }
  for (const [customerId, { stored, sum }] of running) expect(stored, `balance of ${customerId}`).toBe(sum);
}
