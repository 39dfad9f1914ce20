import { and, eq, gt, lt, sql } from "drizzle-orm";
import type { Principal } from "../identity/principal.ts";
import { constantTimeEqualText } from "../shared/constant-time.ts";
import { erasureRequests, users } from "../shared/db/schema.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";
import { AppError, conflict, forbidden, notFound, serviceUnavailable } from "../shared/errors.ts";
import { requireSettings } from "../shared/settings.ts";
import { sendErasureCode } from "./erasure-email.ts";
import { resolveSubject, type Subject, subjectHash } from "./export.ts";

/**
 * The confirmation half of an erasure: the request (a 6-digit code emailed to the admin asking) and its
 * confirmation (the code, within 10 minutes and 5 tries). The code exists in the email only: the row holds its
 * SHA-256 with the request id, compared in constant time. What is deleted once confirmed is erasure-sweep.ts.
 */
export const CODE_TTL_MS = 10 * 60_000;
export const MAX_TRIES = 5;

export type ErasureRow = typeof erasureRequests.$inferSelect;

const CODE_SPACE = 1_000_000;
/** The largest multiple of a million below 2³²: words at or past it are drawn again, so every code is equally likely. */
const UNBIASED_LIMIT = Math.floor(2 ** 32 / CODE_SPACE) * CODE_SPACE;

export function newCode(): string {
  const word = new Uint32Array(1);
  for (;;) {
    crypto.getRandomValues(word);
    if (word[0]! < UNBIASED_LIMIT) return String(word[0]! % CODE_SPACE).padStart(6, "0");
  }
}

async function codeHash(requestId: string, code: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${requestId}:${code}`));
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

export const requestDead = () =>
  new AppError(410, "erasure_request_dead", "This erasure request expired or used up its tries; ask again", "conflict");
const alreadyConfirmed = () => conflict("erasure_already_confirmed", "This erasure request was already confirmed");
const wrongCode = (triesLeft: number) =>
  new AppError(422, "erasure_code_invalid", "The code is not the one emailed for this request", "validation").withDetails({ triesLeft });

/**
 * Records the request and emails its code to the admin asking. Only a signed-in user can receive the code, so an
 * API key (no mailbox) is refused; a person who cannot be found (an unknown customer id) is 404 as in the export.
 */
export async function requestErasure(
  env: Env,
  scope: TenantScope,
  principal: Principal,
  subject: Subject,
  now = Date.now(),
): Promise<{ requestId: string; expiresAt: number; subjectHash: string }> {
  const { EMAIL_FROM } = requireSettings(env, "privacyEmail");
  if (principal.kind !== "user") throw forbidden("An erasure is confirmed with a code emailed to the admin asking: sign in as that admin");
  const [user] = await scope.selectFields(users, { email: users.email }, eq(users.id, principal.id)).limit(1);
  if (!user) throw forbidden();
  const { phones, customerIds } = await resolveSubject(scope, subject);
  const requestId = crypto.randomUUID();
  const code = newCode();
  const expiresAt = now + CODE_TTL_MS;
  const hash = await subjectHash(scope.tenantId, subject);
  await scope.insert(erasureRequests, {
    id: requestId,
    requestedBy: principal.id,
    subjectHash: hash,
    targets: { phones, customerIds },
    codeHash: await codeHash(requestId, code),
    expiresAt,
    status: "pending",
    createdAt: now,
    updatedAt: now,
  });
  try {
    await sendErasureCode(env.EMAIL, { from: EMAIL_FROM, to: user.email, code, requestId, expiresAt });
  } catch {
    // A code nobody received can never confirm the request: it is dead at once, and the admin asks again.
    await scope.update(erasureRequests, { status: "dead", targets: null, updatedAt: now }, eq(erasureRequests.id, requestId));
    throw serviceUnavailable("email_unavailable", "The confirmation code could not be emailed; nothing will be erased, ask again");
  }
  return { requestId, expiresAt, subjectHash: hash };
}

/**
 * Checks the code and, when it is right, claims the request for the sweep (status `sweeping`). Every try is counted
 * before the code is compared, in one conditional update, so guesses sent in parallel cannot outrun the limit; a
 * right code on the fifth try still confirms. Only one confirmation can claim the request: a second one is 409.
 */
export async function confirmErasure(scope: TenantScope, requestId: string, code: string, now = Date.now()): Promise<ErasureRow> {
  const byId = eq(erasureRequests.id, requestId);
  const [row] = (await scope.select(erasureRequests, byId).limit(1)) as ErasureRow[];
  if (!row) throw notFound("Erasure request");
  if (row.status === "sweeping" || row.status === "done") throw alreadyConfirmed();
  if (row.status === "dead") throw requestDead();
  const [counted] = await scope
    .update(
      erasureRequests,
      { attempts: sql`${erasureRequests.attempts} + 1`, updatedAt: now },
      byId,
      eq(erasureRequests.status, "pending"),
      lt(erasureRequests.attempts, MAX_TRIES),
      gt(erasureRequests.expiresAt, now),
    )
    .returning({ attempts: erasureRequests.attempts });
  if (!counted) {
    // Expired, out of tries, or claimed a moment ago by another confirmation.
    const [dead] = await scope
      .update(erasureRequests, { status: "dead", targets: null, updatedAt: now }, byId, eq(erasureRequests.status, "pending"))
      .returning({ id: erasureRequests.id });
    if (dead) throw requestDead();
    const [current] = await scope.selectFields(erasureRequests, { status: erasureRequests.status }, byId);
    throw current?.status === "dead" ? requestDead() : alreadyConfirmed();
  }
  if (!constantTimeEqualText(await codeHash(requestId, code), row.codeHash)) {
    const triesLeft = MAX_TRIES - counted.attempts;
    if (triesLeft === 0) {
      await scope.update(erasureRequests, { status: "dead", targets: null, updatedAt: now }, byId, eq(erasureRequests.status, "pending"));
    }
    throw wrongCode(triesLeft);
  }
  const [claimed] = (await scope
    .update(erasureRequests, { status: "sweeping", confirmedAt: now, updatedAt: now }, and(byId, eq(erasureRequests.status, "pending")))
    .returning()) as ErasureRow[];
  if (!claimed) throw alreadyConfirmed();
  return claimed;
}
