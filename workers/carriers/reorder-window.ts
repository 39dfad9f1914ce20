/**
 * Puts a carrier's audio frames back in sequence order (Telnyx does not guarantee order) within a small window:
 * a frame that arrives early waits for the gap before it to fill, for at most `size` frames; then the gap is
 * given up and counted. Frames older than the last one delivered are late duplicates or stragglers: dropped.
 * Frames without a sequence number pass straight through. Hand-written: this is the per-frame path.
 */
export class ReorderWindow {
  private next: number | null = null;
  private readonly held = new Map<number, string>();
  skipped = 0;
  dropped = 0;

  constructor(
    private readonly size: number,
    private readonly deliver: (payload: string) => void,
  ) {}

  push(sequence: number | undefined, payload: string): void {
    if (sequence === undefined) return this.deliver(payload);
    if (this.next === null || (this.held.size === 0 && sequence === this.next)) {
      this.next = sequence + 1;
      return this.deliver(payload);
    }
    if (sequence < this.next || this.held.has(sequence)) {
      this.dropped++;
      return;
    }
    this.held.set(sequence, payload);
    this.release();
    if (this.held.size > this.size) {
      // The gap is not going to fill: skip to the oldest frame held.
      const oldest = Math.min(...this.held.keys());
      this.skipped += oldest - this.next;
      this.next = oldest;
      this.release();
    }
  }

  private release(): void {
    for (let payload = this.held.get(this.next!); payload !== undefined; payload = this.held.get(this.next!)) {
      this.held.delete(this.next!);
      this.next! += 1;
      this.deliver(payload);
    }
  }
}
