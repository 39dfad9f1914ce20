import { and, asc, desc, eq, exists, getTableColumns, gt, inArray, like, lt, or, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { z } from "zod";
import {
  type BUSINESS_SOURCES,
  customers,
  invoiceItems,
  invoices,
  type LEDGER_DIRECTIONS,
  type LEDGER_KINDS,
  ledgerEntries,
  PAYMENT_MODES,
  products,
} from "../shared/db/schema.ts";
import { TenantScope, tenantScopeOn } from "../shared/db/tenant-scope.ts";
import { uniqueViolation } from "../shared/db/unique-violation.ts";
import { readTenantSettings } from "../shared/tenant-settings.ts";
import { BusinessCache } from "./cache.ts";
import { type CustomerMatch, searchCustomers } from "./customer-search.ts";
import { BusinessError, type Candidate } from "./errors.ts";
import type { WriteMark } from "./idempotency.ts";
import { assertAmount, lineAmount, quantityMilli } from "./money.ts";
import { phoneticKey } from "./phonetic.ts";
import { cursorNumber, decodeCursor, page, pageLimit, presentCustomer, presentEntry, presentInvoice, presentProduct } from "./records.ts";

/** Who is writing: stamped on invoices and ledger entries (`source`, `created_by`). */
export interface Actor {
  source: (typeof BUSINESS_SOURCES)[number];
  by?: string;
}

// ── Inputs: the shapes every caller (REST, voice tools, WhatsApp) hands the engine; money in minor units ───────────

const text = (max: number) => z.string().trim().min(1).max(max);
const optionalText = (max: number) => text(max).nullish();
const id = z.string().min(1).max(64);

export const customerInput = z.strictObject({
  name: text(120),
  phone: z.string().max(32).nullish(),
  email: z.email().max(254).nullish(),
  nickname: optionalText(60),
  language: optionalText(35),
  notes: z.string().max(2000).nullish(),
});
export const customerChange = customerInput.partial();

export const productInput = z.strictObject({
  name: text(120),
  unitPrice: z.number().int(),
  sku: optionalText(64),
  unit: optionalText(20),
});
export const productChange = productInput.partial();

export const invoiceItemInput = z.strictObject({
  productId: id.optional(),
  productName: text(120).optional(),
  quantity: z.number(),
  unitPrice: z.number().int().optional(),
});
export const invoiceInput = z.strictObject({
  customerId: id,
  items: z.array(invoiceItemInput).min(1).max(100),
  notes: z.string().max(2000).optional(),
  /** Optional: when given it must be the tenant's currency (amounts are not converted). */
  currency: z.string().length(3).optional(),
});

export const paymentInput = z.strictObject({
  customerId: id,
  amount: z.number().int(),
  mode: z.enum(PAYMENT_MODES),
  invoiceId: id.optional(),
  reference: z.string().trim().max(120).optional(),
  currency: z.string().length(3).optional(),
});

export type CustomerInput = z.infer<typeof customerInput>;
export type CustomerChange = z.infer<typeof customerChange>;
export type ProductInput = z.infer<typeof productInput>;
export type ProductChange = z.infer<typeof productChange>;
export type InvoiceInput = z.infer<typeof invoiceInput>;
export type PaymentInput = z.infer<typeof paymentInput>;

// ── What the engine answers ──────────────────────────────────────────────────────────────────────────────────────

export interface Customer {
  id: string;
  name: string;
  nickname: string | null;
  phone: string | null;
  email: string | null;
  language: string | null;
  notes: string | null;
  /** What the customer owes, in minor units (negative: the shop owes them). */
  balance: number;
  createdAt: string;
  updatedAt: string;
}

export interface Product {
  id: string;
  name: string;
  unitPrice: number;
  sku: string | null;
  unit: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface InvoiceLine {
  productId: string | null;
  description: string;
  /** In units (1.5 kg), from the stored thousandths. */
  quantity: number;
  unit: string | null;
  unitPrice: number;
  amount: number;
}

export interface InvoiceDraft {
  customerId: string;
  customerName: string;
  currency: string;
  items: InvoiceLine[];
  total: number;
}

/**
 * What writes a priced draft exactly as it was shown: each line's product and unit price, and the currency. A draft a
 * person confirms later (by voice, by WhatsApp) is written from this, so a price or product changed in between
 * changes nothing, and a currency changed in between is refused.
 */
export function invoiceAsShown(draft: InvoiceDraft, notes?: string): InvoiceInput {
  return {
    customerId: draft.customerId,
    currency: draft.currency,
    items: draft.items.map((line) => ({
      ...(line.productId ? { productId: line.productId } : { productName: line.description }),
      quantity: line.quantity,
      unitPrice: line.unitPrice,
    })),
    ...(notes ? { notes } : {}),
  };
}

export interface Invoice extends Omit<InvoiceDraft, "customerName"> {
  id: string;
  status: (typeof invoices.$inferSelect)["status"];
  notes: string | null;
  source: Actor["source"];
  createdAt: string;
  voidedAt: string | null;
  voidReason: string | null;
}

export interface LedgerEntry {
  id: string;
  kind: (typeof LEDGER_KINDS)[number];
  direction: (typeof LEDGER_DIRECTIONS)[number];
  amount: number;
  /** The customer's balance once this entry applied: the running account. */
  balanceAfter: number;
  mode: (typeof PAYMENT_MODES)[number] | null;
  reference: string | null;
  invoiceId: string | null;
  source: Actor["source"];
  createdAt: string;
}

export interface Page<T> {
  items: T[];
  /** Pass back as `cursor` for the next page; null on the last. */
  nextCursor: string | null;
}

type CustomerRow = typeof customers.$inferSelect;
type ProductRow = typeof products.$inferSelect;
type InvoiceRow = typeof invoices.$inferSelect;
type ItemRow = typeof invoiceItems.$inferSelect;

/** What a money write changes: balances (in the customer detail and list) and the invoice history. */
const MONEY_READS = ["balance", "customer_list", "invoice_history"] as const;

/**
 * The small shop's books for one tenant: customers, products, invoices, payments and the ledger that ties them. Every
 * read and write is scoped to the tenant given here (a row of another tenant is simply not found), every amount is an
 * integer in the tenant currency's minor unit, and every write that moves money is ONE D1 batch (one transaction)
 * whose running balance is computed by the database inside that batch, so concurrent writes never lose an update.
 */
export class BusinessEngine {
  private readonly scope: TenantScope;
  /** Reads served from isolate memory or KV, dropped by every write that changes them (workers/business/cache.ts). */
  private readonly cache: BusinessCache;
  private settingsRead: Promise<{ currency: string; timezone: string }> | null = null;

  /** `db` is the D1 binding (the call objects, cron) or the request's TenantScope (the Worker's routes). */
  constructor(
    db: D1Database | TenantScope,
    readonly tenantId: string,
    private readonly actor: Actor,
    kv: KVNamespace,
  ) {
    if (db instanceof TenantScope && db.tenantId !== tenantId) throw new Error("a business engine's scope must be its tenant's");
    this.scope = db instanceof TenantScope ? db : tenantScopeOn(db, tenantId);
    this.cache = new BusinessCache(kv, tenantId);
  }

  /** The tenant's currency and time zone (read once per engine: an engine lives for one request or one tool call). */
  settings(): Promise<{ currency: string; timezone: string }> {
    this.settingsRead ??= readTenantSettings(this.scope).then(({ currency, timezone }) => ({ currency, timezone }));
    return this.settingsRead;
  }

  // ── Customers ──────────────────────────────────────────────────────────────────────────────────────────────────

  async createCustomer(input: CustomerInput): Promise<Customer> {
    const body = parse(customerInput, input);
    const now = Date.now();
    const row = {
      id: crypto.randomUUID(),
      name: body.name,
      nickname: body.nickname ?? null,
      phone: body.phone ? normalizePhone(body.phone) : null,
      email: body.email ?? null,
      language: body.language ?? null,
      notes: body.notes ?? null,
      balance: 0,
      phonetic: phoneticKey(body.name, body.nickname),
      createdAt: now,
      updatedAt: now,
    };
    await phoneUnique(this.scope.insert(customers, row).run());
    await this.cache.invalidate("customer_list");
    return presentCustomer(row);
  }

  async updateCustomer(customerId: string, change: CustomerChange): Promise<Customer> {
    const body = parse(customerChange, change);
    const before = await this.customerRow(customerId);
    const name = body.name ?? before.name;
    const nickname = body.nickname === undefined ? before.nickname : body.nickname;
    const set = {
      ...body,
      ...(body.phone === undefined ? {} : { phone: body.phone ? normalizePhone(body.phone) : null }),
      phonetic: phoneticKey(name, nickname),
      updatedAt: Date.now(),
    };
    const [row] = await phoneUnique(this.scope.update(customers, set, eq(customers.id, customerId)).returning());
    await this.cache.invalidate("customer_list", "balance");
    return presentCustomer(row ?? before);
  }

  /** The customer with their balance; 404 `customer_not_found` (also for another tenant's id). */
  async getCustomer(customerId: string): Promise<Customer> {
    return this.cache.read("balance", customerId, async () => presentCustomer(await this.customerRow(customerId)));
  }

  /** Customers by name (then id), a page at a time. */
  async listCustomers(options: { limit?: number; cursor?: string } = {}): Promise<Page<Customer>> {
    const limit = pageLimit(options.limit);
    return this.cache.read("customer_list", `${limit}:${options.cursor ?? ""}`, () => this.customerPage(limit, options.cursor));
  }

  private async customerPage(limit: number, cursor: string | undefined): Promise<Page<Customer>> {
    const after = decodeCursor(cursor);
    const rows = (await this.scope
      .select(
        customers,
        after ? or(gt(customers.name, after[0]), and(eq(customers.name, after[0]), gt(customers.id, after[1]))) : undefined,
      )
      .orderBy(asc(customers.name), asc(customers.id))
      .limit(limit + 1)) as CustomerRow[];
    return page(rows, limit, presentCustomer, (row) => [row.name, row.id]);
  }

  /** The customer with this number (normalised to E.164 first), or null. */
  async customerByPhone(phone: string): Promise<Customer | null> {
    const [row] = (await this.scope.select(customers, eq(customers.phone, normalizePhone(phone)))) as CustomerRow[];
    return row ? presentCustomer(row) : null;
  }

  /**
   * The customer meant by an id or a name: the id, or the one customer whose name or nickname is exactly this
   * (ignoring case). Several → 422 `ambiguous_customer`, none → 404 `customer_not_found`, each with candidates to
   * ask about; never a guess.
   */
  async resolveCustomer(nameOrId: string): Promise<Customer> {
    const wanted = nameOrId.trim();
    if (!wanted) throw new BusinessError("customer_not_found", 404, "Which customer? No name was given");
    const [byId] = (await this.scope.select(customers, eq(customers.id, wanted))) as CustomerRow[];
    if (byId) return presentCustomer(byId);
    const lower = wanted.toLowerCase();
    const named = (await this.scope
      .select(customers, or(sql`lower(${customers.name}) = ${lower}`, sql`lower(${customers.nickname}) = ${lower}`))
      .orderBy(asc(customers.name))
      .limit(6)) as CustomerRow[];
    if (named.length === 1 && named[0]) return presentCustomer(named[0]);
    if (named.length > 1)
      throw new BusinessError(
        "ambiguous_customer",
        422,
        `${named.length} customers are called "${wanted}"; which one?`,
        named.slice(0, 5).map((row) => candidate(row.id, row.name, 1)),
      );
    throw new BusinessError("customer_not_found", 404, `No customer called "${wanted}"`, await this.soundsLike(wanted));
  }

  /**
   * Fuzzy search over names, nicknames, phone endings and emails, best first (workers/business/customer-search.ts):
   * what a misheard or misspelt name might mean. Never used to pick a customer on its own: see `resolveCustomer`.
   */
  searchCustomers(query: string, limit = 5): Promise<CustomerMatch[]> {
    return searchCustomers(this.scope, query, limit);
  }

  /** Balance in minor units (what the customer owes). */
  async balance(customerId: string): Promise<number> {
    return (await this.getCustomer(customerId)).balance;
  }

  /** The customer's ledger, oldest first, each entry with the balance after it. */
  async ledger(customerId: string, options: { limit?: number; cursor?: string } = {}): Promise<Page<LedgerEntry>> {
    await this.customerRow(customerId);
    const limit = pageLimit(options.limit);
    const after = decodeCursor(options.cursor);
    // rowid is the order the entries were written in (one writer per database), finer than a millisecond timestamp.
    const seq = sql<number>`rowid`;
    const rows = (await this.scope
      .selectFields(
        ledgerEntries,
        { ...getTableColumns(ledgerEntries), seq },
        eq(ledgerEntries.customerId, customerId),
        after ? gt(seq, cursorNumber(after[0])) : undefined,
      )
      .orderBy(seq)
      .limit(limit + 1)) as Array<typeof ledgerEntries.$inferSelect & { seq: number }>;
    return page(rows, limit, presentEntry, (row) => [String(row.seq), ""]);
  }

  // ── Products ───────────────────────────────────────────────────────────────────────────────────────────────────

  async createProduct(input: ProductInput): Promise<Product> {
    const body = parse(productInput, input);
    const { currency } = await this.settings();
    const now = Date.now();
    const row = {
      id: crypto.randomUUID(),
      name: body.name,
      unitPrice: assertAmount(body.unitPrice, currency, "A price"),
      sku: body.sku ?? null,
      unit: body.unit ?? null,
      createdAt: now,
      updatedAt: now,
    };
    await skuUnique(this.scope.insert(products, row).run());
    await this.cache.invalidate("product_catalogue");
    return presentProduct(row);
  }

  async updateProduct(productId: string, change: ProductChange): Promise<Product> {
    const body = parse(productChange, change);
    if (body.unitPrice !== undefined) assertAmount(body.unitPrice, (await this.settings()).currency, "A price");
    const [row] = await skuUnique(this.scope.update(products, { ...body, updatedAt: Date.now() }, eq(products.id, productId)).returning());
    if (!row) throw new BusinessError("product_not_found", 404, "No such product");
    await this.cache.invalidate("product_catalogue");
    return presentProduct(row);
  }

  /** Products by name (then id), a page at a time. */
  async listProducts(options: { limit?: number; cursor?: string } = {}): Promise<Page<Product>> {
    const limit = pageLimit(options.limit);
    return this.cache.read("product_catalogue", `${limit}:${options.cursor ?? ""}`, () => this.productPage(limit, options.cursor));
  }

  private async productPage(limit: number, cursor: string | undefined): Promise<Page<Product>> {
    const after = decodeCursor(cursor);
    const rows = (await this.scope
      .select(products, after ? or(gt(products.name, after[0]), and(eq(products.name, after[0]), gt(products.id, after[1]))) : undefined)
      .orderBy(asc(products.name), asc(products.id))
      .limit(limit + 1)) as ProductRow[];
    return page(rows, limit, presentProduct, (row) => [row.name, row.id]);
  }

  // ── Invoices ───────────────────────────────────────────────────────────────────────────────────────────────────

  /** The invoice as it would be: customer and items resolved, priced and totalled. Nothing is written. */
  async priceInvoice(input: InvoiceInput): Promise<InvoiceDraft> {
    const body = parse(invoiceInput, input);
    const currency = await this.currencyOf(body.currency);
    const customer = await this.customerRow(body.customerId);
    const items: InvoiceLine[] = [];
    for (const item of body.items) {
      const milli = quantityMilli(item.quantity);
      const product = await this.productFor(item);
      const unitPrice = item.unitPrice ?? product?.unitPrice;
      if (unitPrice === undefined) throw new BusinessError("invalid_amount", 422, "An item without a product needs a unitPrice");
      assertAmount(unitPrice, currency, "A unit price");
      const amount = lineAmount(unitPrice, milli);
      assertAmount(amount, currency, "An item's amount");
      items.push({
        productId: product?.id ?? null,
        description: product?.name ?? item.productName ?? "",
        quantity: milli / 1000,
        unit: product?.unit ?? null,
        unitPrice,
        amount,
      });
    }
    const total = items.reduce((sum, item) => sum + item.amount, 0);
    assertAmount(total, currency, "The invoice's total");
    return { customerId: customer.id, customerName: customer.name, currency, items, total };
  }

  /**
   * Writes invoice, items, the ledger debit and the customer's balance in one transaction; with an idempotency key's
   * `mark`, the key's proof of the write too (idempotency.ts).
   */
  async createInvoice(input: InvoiceInput, mark?: WriteMark): Promise<Invoice> {
    const draft = await this.priceInvoice(input);
    const now = Date.now();
    const invoiceId = crypto.randomUUID();
    const invoice = {
      id: invoiceId,
      customerId: draft.customerId,
      status: "open" as const,
      currency: draft.currency,
      total: draft.total,
      notes: input.notes ?? null,
      source: this.actor.source,
      createdBy: this.actor.by ?? null,
      createdAt: now,
      voidedAt: null,
      voidReason: null,
    };
    const itemRows = draft.items.map((item) => ({
      id: crypto.randomUUID(),
      invoiceId,
      productId: item.productId,
      description: item.description,
      quantityMilli: Math.round(item.quantity * 1000),
      unit: item.unit,
      unitPrice: item.unitPrice,
      amount: item.amount,
    }));
    await this.scope.batch([
      this.scope.insert(invoices, invoice),
      this.scope.insert(invoiceItems, itemRows),
      ...this.movement(draft.customerId, draft.total, { kind: "invoice", direction: "debit", invoiceId, createdAt: now }),
      ...(mark ? [mark(invoiceId)] : []),
    ]);
    await this.cache.invalidate(...MONEY_READS);
    return presentInvoice(invoice, itemRows);
  }

  /** An invoice a write committed but never answered for (idempotency.ts): the caches it dropped, dropped again. */
  async writtenInvoice(invoiceId: string): Promise<Invoice> {
    await this.cache.invalidate(...MONEY_READS);
    return this.getInvoice(invoiceId);
  }

  async getInvoice(invoiceId: string): Promise<Invoice> {
    const row = await this.invoiceRow(invoiceId);
    const items = (await this.scope.select(invoiceItems, eq(invoiceItems.invoiceId, invoiceId)).orderBy(sql`rowid`)) as ItemRow[];
    return presentInvoice(row, items);
  }

  /** Newest first, optionally one customer's, a page at a time. */
  async listInvoices(options: { customerId?: string; limit?: number; cursor?: string } = {}): Promise<Page<Invoice>> {
    const limit = pageLimit(options.limit);
    const key = `${options.customerId ?? ""}:${limit}:${options.cursor ?? ""}`;
    return this.cache.read("invoice_history", key, () => this.invoicePage(options.customerId, limit, options.cursor));
  }

  private async invoicePage(customerId: string | undefined, limit: number, cursor: string | undefined): Promise<Page<Invoice>> {
    const after = decodeCursor(cursor);
    const rows = (await this.scope
      .select(
        invoices,
        customerId ? eq(invoices.customerId, customerId) : undefined,
        after
          ? or(
              lt(invoices.createdAt, cursorNumber(after[0])),
              and(eq(invoices.createdAt, cursorNumber(after[0])), lt(invoices.id, after[1])),
            )
          : undefined,
      )
      .orderBy(desc(invoices.createdAt), desc(invoices.id))
      .limit(limit + 1)) as InvoiceRow[];
    const shown = rows.slice(0, limit);
    const items = shown.length
      ? ((await this.scope
          .select(
            invoiceItems,
            inArray(
              invoiceItems.invoiceId,
              shown.map((row) => row.id),
            ),
          )
          .orderBy(sql`rowid`)) as ItemRow[])
      : [];
    return page(
      rows,
      limit,
      (row) =>
        presentInvoice(
          row,
          items.filter((item) => item.invoiceId === row.id),
        ),
      (row) => [String(row.createdAt), row.id],
    );
  }

  /**
   * Voids an open invoice: status, the reversing credit and the balance in one transaction. The reversing entry is
   * written only while the invoice is still open, and the other two statements only if that entry exists, so of
   * concurrent voids exactly one reverses; the others find nothing to do and answer 409 `invoice_already_void`.
   */
  async voidInvoice(invoiceId: string, reason?: string): Promise<Invoice> {
    const before = await this.invoiceRow(invoiceId);
    if (before.status === "void") throw alreadyVoid();
    const entryId = crypto.randomUUID();
    const now = Date.now();
    const entryWritten = exists(this.scope.select(ledgerEntries, eq(ledgerEntries.id, entryId)));
    const balanceOf = this.scope.selectFields(customers, { balance: customers.balance }, eq(customers.id, before.customerId));
    await this.scope.batch([
      // INSERT ... SELECT from the invoice row while it is open: a void that lost the race selects nothing.
      this.scope.insertFrom(
        ledgerEntries,
        this.scope.selectFields(
          invoices,
          {
            id: sql<string>`${entryId}`.as("id"),
            tenantId: invoices.tenantId,
            customerId: invoices.customerId,
            kind: sql<"void">`'void'`.as("kind"),
            direction: sql<"credit">`'credit'`.as("direction"),
            amount: invoices.total,
            mode: sql<null>`null`.as("mode"),
            reference: sql<null>`null`.as("reference"),
            invoiceId: invoices.id,
            balanceAfter: sql<number>`${balanceOf} - ${invoices.total}`.as("balance_after"),
            source: sql<Actor["source"]>`${this.actor.source}`.as("source"),
            createdBy: sql<string | null>`${this.actor.by ?? null}`.as("created_by"),
            createdAt: sql<number>`${now}`.as("created_at"),
          },
          eq(invoices.id, invoiceId),
          eq(invoices.status, "open"),
        ),
      ),
      this.scope.update(
        invoices,
        { status: "void", voidedAt: now, voidReason: reason ?? null },
        eq(invoices.id, invoiceId),
        eq(invoices.status, "open"),
        entryWritten,
      ),
      this.scope.update(
        customers,
        { balance: sql`${customers.balance} - ${before.total}`, updatedAt: now },
        eq(customers.id, before.customerId),
        entryWritten,
      ),
    ]);
    const [reversal] = (await this.scope.select(ledgerEntries, eq(ledgerEntries.id, entryId))) as unknown[];
    if (!reversal) throw alreadyVoid();
    await this.cache.invalidate(...MONEY_READS);
    return this.getInvoice(invoiceId);
  }

  // ── Payments ───────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Writes the ledger credit and the customer's balance in one transaction (with an idempotency key's `mark`, as
   * createInvoice); answers the entry.
   */
  async recordPayment(input: PaymentInput, mark?: WriteMark): Promise<LedgerEntry> {
    const body = parse(paymentInput, input);
    const currency = await this.currencyOf(body.currency);
    assertAmount(body.amount, currency, "A payment");
    await this.customerRow(body.customerId);
    if (body.invoiceId) {
      const invoice = await this.invoiceRow(body.invoiceId);
      if (invoice.customerId !== body.customerId)
        throw new BusinessError("invoice_customer_mismatch", 422, "That invoice is another customer's");
      if (invoice.status === "void") throw new BusinessError("invoice_void", 409, "That invoice is void; a payment cannot go towards it");
    }
    const id = crypto.randomUUID();
    const now = Date.now();
    await this.scope.batch([
      ...this.movement(body.customerId, body.amount, {
        id,
        kind: "payment",
        direction: "credit",
        mode: body.mode,
        reference: body.reference || null,
        invoiceId: body.invoiceId ?? null,
        createdAt: now,
      }),
      ...(mark ? [mark(id)] : []),
    ]);
    return this.writtenPayment(id);
  }

  /** A payment's ledger entry once written, the caches it changed dropped (also for a write never answered for). */
  async writtenPayment(entryId: string): Promise<LedgerEntry> {
    const [row] = (await this.scope.select(ledgerEntries, eq(ledgerEntries.id, entryId), eq(ledgerEntries.kind, "payment"))) as Array<
      typeof ledgerEntries.$inferSelect
    >;
    if (!row) throw new Error("a payment's ledger entry was not written");
    await this.cache.invalidate(...MONEY_READS);
    return presentEntry(row);
  }

  // ── Internals ──────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * The balance update and its ledger entry, for one batch. The entry's `balance_after` is read from the customer
   * row by the database in the same transaction, after the update: never a value this Worker read earlier, so two
   * writes racing cannot both start from the same old balance.
   */
  private movement(
    customerId: string,
    amount: number,
    entry: Pick<LedgerEntry, "kind" | "direction"> &
      Partial<Pick<LedgerEntry, "id" | "mode" | "reference" | "invoiceId">> & { createdAt: number },
  ): [BatchItem<"sqlite">, BatchItem<"sqlite">] {
    const delta = entry.direction === "debit" ? amount : -amount;
    return [
      this.scope.update(
        customers,
        { balance: sql`${customers.balance} + ${delta}`, updatedAt: entry.createdAt },
        eq(customers.id, customerId),
      ),
      this.scope.insert(ledgerEntries, {
        id: entry.id ?? crypto.randomUUID(),
        customerId,
        kind: entry.kind,
        direction: entry.direction,
        amount,
        mode: entry.mode ?? null,
        reference: entry.reference ?? null,
        invoiceId: entry.invoiceId ?? null,
        balanceAfter: sql`(${this.scope.selectFields(customers, { balance: customers.balance }, eq(customers.id, customerId))})`,
        source: this.actor.source,
        createdBy: this.actor.by ?? null,
        createdAt: entry.createdAt,
      }),
    ];
  }

  private async currencyOf(given: string | undefined): Promise<string> {
    const { currency } = await this.settings();
    if (given !== undefined && given !== currency)
      throw new BusinessError("currency_mismatch", 422, `Amounts here are in ${currency}, not ${given}; nothing is converted`);
    return currency;
  }

  private async customerRow(customerId: string): Promise<CustomerRow> {
    const [row] = (await this.scope.select(customers, eq(customers.id, customerId))) as CustomerRow[];
    if (!row) throw new BusinessError("customer_not_found", 404, "No such customer");
    return row;
  }

  private async invoiceRow(invoiceId: string): Promise<InvoiceRow> {
    const [row] = (await this.scope.select(invoices, eq(invoices.id, invoiceId))) as InvoiceRow[];
    if (!row) throw new BusinessError("invoice_not_found", 404, "No such invoice");
    return row;
  }

  /** The item's product: by id, or the one product of that name (ignoring case); a free-text item has none. */
  private async productFor(item: z.infer<typeof invoiceItemInput>): Promise<ProductRow | null> {
    if (item.productId) {
      const [row] = (await this.scope.select(products, eq(products.id, item.productId))) as ProductRow[];
      if (!row) throw new BusinessError("unknown_product", 422, "No such product");
      return row;
    }
    if (!item.productName) throw new BusinessError("unknown_product", 422, "Each item needs a productId or a productName");
    const name = item.productName.trim();
    const named = (await this.scope.select(products, sql`lower(${products.name}) = ${name.toLowerCase()}`).limit(6)) as ProductRow[];
    if (named.length === 1 && named[0]) return named[0];
    if (named.length > 1)
      throw new BusinessError(
        "ambiguous_product",
        422,
        `${named.length} products are called "${name}"; which one?`,
        named.slice(0, 5).map((row) => candidate(row.id, row.name, 1)),
      );
    // A free-text line (a service, a one-off) is allowed when it names its own price.
    if (item.unitPrice !== undefined) return null;
    const similar = (await this.scope
      .select(products, like(sql`lower(${products.name})`, `%${escapeLike(name.toLowerCase())}%`))
      .orderBy(asc(products.name))
      .limit(5)) as ProductRow[];
    throw new BusinessError(
      "unknown_product",
      422,
      `No product called "${name}"; give a unitPrice to sell it as a one-off`,
      similar.map((row) => candidate(row.id, row.name, 0.5)),
    );
  }

  /** Customers whose names share a Soundex code with `name`, most shared first, to offer when nothing matched exactly. */
  /** Candidates for a name that matched no one exactly: the fuzzy search's best five. */
  private async soundsLike(name: string): Promise<Candidate[]> {
    return (await this.searchCustomers(name)).map((match) => candidate(match.customer.id, match.customer.name, match.score));
  }
}

// ── Helpers ──────────────────────────────────────────────────────────────────────────────────────────────────────

/** Parses an engine input; a shape the engine cannot use is 400 `invalid_input`, naming the field. */
function parse<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new BusinessError("invalid_input", 400, `${issue?.path.join(".") || "input"}: ${issue?.message ?? "invalid"}`);
}

/**
 * A phone number as E.164: spaces, dashes, dots and brackets dropped, a leading 00 read as +. A number without its
 * country code is refused rather than guessed (the shop's customers may be anywhere).
 */
export function normalizePhone(raw: string): string {
  const compact = raw.replace(/[\s\-.()]/g, "").replace(/^00/, "+");
  if (!/^\+[1-9]\d{6,14}$/.test(compact))
    throw new BusinessError("invalid_phone", 400, "A phone number needs its country code, like +919812345678");
  return compact;
}

/** Turns the database's refusal of a second customer with one phone number into 409 `phone_taken`. */
async function phoneUnique<T>(write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (error) {
    if (uniqueViolation(error, "customers.phone")) throw new BusinessError("phone_taken", 409, "Another customer has this phone number");
    throw error;
  }
}

async function skuUnique<T>(write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (error) {
    if (uniqueViolation(error, "products.sku")) throw new BusinessError("sku_taken", 409, "Another product has this SKU");
    throw error;
  }
}

function alreadyVoid(): BusinessError {
  return new BusinessError("invoice_already_void", 409, "This invoice is already void");
}

function candidate(id: string, name: string, score: number): Candidate {
  return { id, name, score };
}

function escapeLike(value: string): string {
  return value.replace(/[%_\\]/g, (char) => `\\${char}`);
}
