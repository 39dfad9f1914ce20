/**
 * A session object's synchronous KV storage, remembering for the instance's life what it read and wrote.
 *
 * The object is the only writer of its storage, so a key read once need not be read again, and an object that
 * started with nothing stored reads no key at all. Every read is a statement on the object's SQLite (locally also a
 * span in wrangler's trace store): a call's object read six keys in the voice webhook's answer and four at each
 * alarm (test/bench/FINDINGS.md). Values are cloned in and out, as storage does, so a caller changing what it got
 * changes nothing stored.
 */
export class RememberedKv implements SyncKvStorage {
  private readonly known = new Map<string, unknown>();
  private startedEmpty: boolean;

  constructor(private readonly kv: SyncKvStorage) {
    this.startedEmpty = [...kv.list({ limit: 1 })].length === 0;
  }

  get<T = unknown>(key: string): T | undefined {
    if (!this.known.has(key)) this.known.set(key, this.startedEmpty ? undefined : this.kv.get(key));
    return cloned(this.known.get(key)) as T | undefined;
  }

  put<T>(key: string, value: T): void {
    this.kv.put(key, value);
    this.known.set(key, cloned(value));
  }

  delete(key: string): boolean {
    const existed = this.kv.delete(key);
    this.known.set(key, undefined);
    return existed;
  }

  /** Not remembered: no part lists its keys on a hot path. */
  list<T = unknown>(options?: SyncKvListOptions): Iterable<[string, T]> {
    return this.kv.list<T>(options);
  }

  /** Storage was wiped (`deleteAll`): nothing is stored now. */
  forgetAll(): void {
    this.known.clear();
    this.startedEmpty = true;
  }
}

const cloned = (value: unknown): unknown => (typeof value === "object" && value !== null ? structuredClone(value) : value);
