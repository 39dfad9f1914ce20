/**
 * The `Idempotency-Key` of one form that moves money: the same key while the same body is retried (a timeout, a
 * lost answer: the platform answers the first result and writes nothing twice), a new one once the body changes or
 * the form succeeded (the same key with another body would be refused with 422).
 */
export class IdempotentForm {
  private key = crypto.randomUUID();
  private body: string | null = null;

  headerFor(body: unknown): Record<string, string> {
    const text = JSON.stringify(body);
    if (this.body !== null && this.body !== text) this.key = crypto.randomUUID();
    this.body = text;
    return { "Idempotency-Key": this.key };
  }

  succeeded(): void {
    this.key = crypto.randomUUID();
    this.body = null;
  }
}
