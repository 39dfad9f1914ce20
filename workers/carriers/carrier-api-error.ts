/** A carrier REST call that failed; `retryable` marks failures another carrier (or a later try) may not have. */
export class CarrierApiError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = "CarrierApiError";
  }
}

export const CARRIER_TIMEOUT_MS = 5_000;

/** Network failures and timeouts are retryable; so are 429 and 5xx answers. */
export const isRetryableStatus = (status: number) => status === 429 || status >= 500;
