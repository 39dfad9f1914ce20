import { AppError, type ErrorCategory } from "../shared/errors.ts";

/** A customer or product that might be the one meant, best first; offered instead of a guess. */
export interface Candidate {
  id: string;
  name: string;
  score: number;
}

export type BusinessErrorStatus = 400 | 404 | 409 | 422;

const CATEGORY: Record<BusinessErrorStatus, ErrorCategory> = { 400: "validation", 404: "not_found", 409: "conflict", 422: "validation" };

/**
 * Why the engine refused (nothing was written). An AppError, so the REST layer renders it as the house error JSON
 * (`candidates` in `details`) with no mapping of its own; the voice tools and WhatsApp turn `message` (written for a
 * person) into a sentence.
 */
export class BusinessError extends AppError {
  constructor(
    code: string,
    status: BusinessErrorStatus,
    message: string,
    readonly candidates?: Candidate[],
  ) {
    super(status, code, message, CATEGORY[status]);
    this.name = "BusinessError";
    if (candidates) this.withDetails({ candidates });
  }
}
