import type { customers, invoiceItems, invoices, ledgerEntries, products } from "../shared/db/schema.ts";
import type { Customer, Invoice, LedgerEntry, Page, Product } from "./engine.ts";
import { BusinessError } from "./errors.ts";

/** Rows as the engine answers them (no tenant id, no phonetic key, ISO times), and its keyset pages. */
type CustomerRow = typeof customers.$inferSelect;
type ProductRow = typeof products.$inferSelect;
type InvoiceRow = typeof invoices.$inferSelect;
type ItemRow = typeof invoiceItems.$inferSelect;

const iso = (ms: number) => new Date(ms).toISOString();
const MAX_PAGE = 100;

export function pageLimit(limit: number | undefined): number {
  return Math.min(Math.max(Math.trunc(limit ?? 50), 1), MAX_PAGE);
}

export function page<R, T>(rows: R[], limit: number, present: (row: R) => T, key: (row: R) => [string, string]): Page<T> {
  const last = rows.length > limit ? rows[limit - 1] : undefined;
  return { items: rows.slice(0, limit).map(present), nextCursor: last ? encodeCursor(key(last)) : null };
}

export function encodeCursor(parts: [string, string]): string {
  return btoa(JSON.stringify(parts)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function decodeCursor(cursor: string | undefined): [string, string] | null {
  if (!cursor) return null;
  try {
    const parsed: unknown = JSON.parse(atob(cursor.replace(/-/g, "+").replace(/_/g, "/")));
    if (Array.isArray(parsed) && parsed.length === 2 && typeof parsed[0] === "string" && typeof parsed[1] === "string")
      return [parsed[0], parsed[1]];
  } catch {
    // Falls through to the refusal below.
  }
  throw new BusinessError("invalid_cursor", 400, "The cursor is not one this list gave");
}

export function cursorNumber(part: string): number {
  const value = Number(part);
  if (!Number.isSafeInteger(value)) throw new BusinessError("invalid_cursor", 400, "The cursor is not one this list gave");
  return value;
}

export function presentCustomer(row: Omit<CustomerRow, "tenantId">): Customer {
  const { id, name, nickname, phone, email, language, notes, balance } = row;
  return { id, name, nickname, phone, email, language, notes, balance, createdAt: iso(row.createdAt), updatedAt: iso(row.updatedAt) };
}

export function presentProduct(row: Omit<ProductRow, "tenantId">): Product {
  const { id, name, unitPrice, sku, unit } = row;
  return { id, name, unitPrice, sku, unit, createdAt: iso(row.createdAt), updatedAt: iso(row.updatedAt) };
}

export function presentInvoice(row: Omit<InvoiceRow, "tenantId">, items: Array<Omit<ItemRow, "tenantId">>): Invoice {
  return {
    id: row.id,
    customerId: row.customerId,
    status: row.status,
    currency: row.currency,
    total: row.total,
    notes: row.notes,
    source: row.source,
    items: items.map((item) => ({
      productId: item.productId,
      description: item.description,
      quantity: item.quantityMilli / 1000,
      unit: item.unit,
      unitPrice: item.unitPrice,
      amount: item.amount,
    })),
    createdAt: iso(row.createdAt),
    voidedAt: row.voidedAt === null ? null : iso(row.voidedAt),
    voidReason: row.voidReason,
  };
}

export function presentEntry(row: typeof ledgerEntries.$inferSelect): LedgerEntry {
  return {
    id: row.id,
    kind: row.kind,
    direction: row.direction,
    amount: row.amount,
    balanceAfter: row.balanceAfter,
    mode: row.mode,
    reference: row.reference,
    invoiceId: row.invoiceId,
    source: row.source,
    createdAt: iso(row.createdAt),
  };
}
