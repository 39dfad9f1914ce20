import { z } from "@hono/zod-openapi";
import { jsonBody, jsonResponse, protectedRoute, publicRoute } from "../http/openapi.ts";
import { enforceRateLimit } from "../http/rate-limit.ts";
import { publicRouter } from "../http/router.ts";
import { ACCOUNT_LOCK_SECONDS, accountLockState, budgetAllowsSignIn, spendFailure } from "../identity/account-lock.ts";
import { userByEmail, userById } from "../identity/accounts.ts";
import { DECOY_HASH, verifyPassword } from "../identity/passwords.ts";
import { revokeFamily, rotate, startFamily } from "../identity/refresh-tokens.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { cutoffNow, revokeAccessToken, revokeAllStatements } from "../identity/revocation.ts";
import { ACCESS_TOKEN_TTL_SECONDS, issueAccessToken, publicJwks } from "../identity/tokens.ts";
import { database } from "../shared/db/client.ts";
import { TenantScope } from "../shared/db/tenant-scope.ts";
import { sha256Hex } from "../shared/encoding.ts";
import { badRequest, tooManyRequests, unauthorized } from "../shared/errors.ts";
import { requireSettings } from "../shared/settings.ts";

const tokensSchema = z.object({ accessToken: z.string(), refreshToken: z.string(), expiresIn: z.number().int() }).openapi("Tokens");

const loginRoute = publicRoute({
  method: "post",
  path: "/api/v1/auth/login",
  tags: ["auth"],
  summary: "Exchange email and password for an access token and a refresh token",
  request: jsonBody(z.strictObject({ email: z.email().max(254), password: z.string().min(1).max(1024) })),
  responses: { 200: jsonResponse(tokensSchema, "Signed in"), 401: jsonResponse(z.unknown(), "Wrong email or password") },
});

const refreshRoute = publicRoute({
  method: "post",
  path: "/api/v1/auth/refresh",
  tags: ["auth"],
  summary: "Spend a refresh token for a new pair; reusing a spent one revokes its whole family",
  request: jsonBody(z.strictObject({ refreshToken: z.string().min(1).max(512) })),
  responses: { 200: jsonResponse(tokensSchema, "New tokens"), 401: jsonResponse(z.unknown(), "Invalid refresh token") },
});

const logoutRoute = protectedRoute("self:manage", {
  method: "post",
  path: "/api/v1/auth/logout",
  tags: ["auth"],
  summary: "Revoke this access token and its refresh-token family",
  responses: { 204: { description: "Signed out" } },
});

const revokeAllRoute = protectedRoute("self:manage", {
  method: "post",
  path: "/api/v1/auth/revoke-all",
  tags: ["auth"],
  summary: "Revoke every token of the calling user issued before now",
  responses: { 204: { description: "All earlier tokens revoked" } },
});

const jwksRoute = publicRoute({
  method: "get",
  path: "/.well-known/jwks.json",
  tags: ["auth"],
  summary: "Public keys that verify access tokens (all keys in rotation)",
  responses: { 200: jsonResponse(z.object({ keys: z.array(z.record(z.string(), z.unknown())) }), "JWK Set") },
});

const scopeOf = (env: Env, tenantId: string) => new TenantScope(database(env.DB), tenantId);

export const authRoutes = publicRouter()
  .openapi(loginRoute, async (c) => {
    const settings = requireSettings(c.env, "identity");
    const { email, password } = c.req.valid("json");
    const normalizedEmail = email.trim().toLowerCase();
    // Every attempt counts against its source address; only failures count against the account (below).
    await enforceRateLimit(c.env.LOGIN_LIMITER, `ip:${c.get("clientIp")}`);
    const emailHash = await sha256Hex(normalizedEmail);
    const lock = await accountLockState(c.env, c.get("log"), emailHash);
    if (lock === "locked") throw tooManyRequests(ACCOUNT_LOCK_SECONDS);

    const user = await userByEmail(c.env, normalizedEmail);
    // Unknown emails still pay for a PBKDF2 run, so response time does not reveal which accounts exist.
    const passwordOk = await verifyPassword(password, user?.passwordHash ?? DECOY_HASH);
    if (!user || !passwordOk || user.disabledAt !== null) {
      if (user) {
        const reason = passwordOk ? "disabled" : "bad_password";
        // Not awaited: a known account's failure must cost the caller what an unknown one's does.
        c.executionCtx.waitUntil(
          auditFromRequest(
            c,
            { action: "auth.login", targetType: "user", targetId: user.id, outcome: "failure", details: { reason } },
            scopeOf(c.env, user.tenantId),
          ).then(
            () => {},
            () => {},
          ),
        );
      }
      c.get("log").warn("security.login_failed", { emailHash: emailHash.slice(0, 16), knownUser: Boolean(user) });
      // Failures alone count against the account, known or not: past the limit it is locked for a minute.
      if (await spendFailure(c.env, c.get("log"), normalizedEmail, emailHash)) throw tooManyRequests(ACCOUNT_LOCK_SECONDS);
      throw unauthorized("Wrong email or password");
    }
    if (lock === "unknown" && !(await budgetAllowsSignIn(c.env, normalizedEmail))) throw tooManyRequests(ACCOUNT_LOCK_SECONDS);

    const scope = scopeOf(c.env, user.tenantId);
    const family = await startFamily(scope, user.id);
    const access = await issueAccessToken(settings, {
      userId: user.id,
      tenantId: user.tenantId,
      role: user.role,
      familyId: family.familyId,
      notBefore: user.tokensValidAfter,
    });
    await scope.batch([
      family.statement,
      auditFromRequest(
        c,
        { actorType: "user", actorId: user.id, action: "auth.login", targetType: "user", targetId: user.id, outcome: "success" },
        scope,
      ),
    ]);
    return c.json({ accessToken: access.token, refreshToken: family.token, expiresIn: ACCESS_TOKEN_TTL_SECONDS }, 200);
  })
  .openapi(refreshRoute, async (c) => {
    const settings = requireSettings(c.env, "identity");
    // Its own budget per address: an office's refreshing consoles never use up its people's sign-ins, nor the reverse.
    await enforceRateLimit(c.env.LOGIN_LIMITER, `refresh-ip:${c.get("clientIp")}`);
    const result = await rotate(database(c.env.DB), c.req.valid("json").refreshToken);
    if (!result.ok) {
      if (result.reason === "reused" && result.tenantId) {
        await auditFromRequest(
          c,
          {
            action: "auth.refresh_reuse",
            targetType: "refresh_family",
            targetId: result.familyId,
            outcome: "failure",
            details: { userId: result.userId },
          },
          scopeOf(c.env, result.tenantId),
        );
        c.get("log").warn("security.refresh_reuse", { tenantId: result.tenantId, familyId: result.familyId });
      }
      throw unauthorized("Invalid refresh token");
    }
    const user = await userById(c.env, result.userId);
    if (!user || user.disabledAt !== null || user.tenantId !== result.tenantId) {
      await revokeFamily(scopeOf(c.env, result.tenantId), result.familyId, "user_unavailable");
      throw unauthorized("Invalid refresh token");
    }
    const access = await issueAccessToken(settings, {
      userId: user.id,
      tenantId: user.tenantId,
      role: user.role,
      familyId: result.familyId,
      notBefore: user.tokensValidAfter,
    });
    return c.json({ accessToken: access.token, refreshToken: result.token, expiresIn: ACCESS_TOKEN_TTL_SECONDS }, 200);
  })
  .openapi(logoutRoute, async (c) => {
    const principal = c.get("principal");
    if (principal.kind !== "user") throw badRequest("not_a_user_token", "Logout takes a user's access token; revoke API keys instead");
    const scope = c.get("scope");
    const revoke = revokeAccessToken(scope, {
      sub: principal.id,
      tenant: principal.tenantId,
      role: principal.role,
      jti: principal.jti,
      iat: principal.issuedAt,
      exp: principal.expiresAt,
    });
    const logoutAudit = auditFromRequest(c, { action: "auth.logout", targetType: "user", targetId: principal.id, outcome: "success" });
    await scope.batch(
      principal.familyId ? [revoke, logoutAudit, revokeFamily(scope, principal.familyId, "logout")] : [revoke, logoutAudit],
    );
    return c.body(null, 204);
  })
  .openapi(revokeAllRoute, async (c) => {
    const principal = c.get("principal");
    if (principal.kind !== "user") throw badRequest("not_a_user_token", "revoke-all takes a user's access token");
    const scope = c.get("scope");
    const cutoff = cutoffNow();
    await scope.batch([
      ...revokeAllStatements(scope, principal.id, cutoff, "revoke_all"),
      auditFromRequest(c, { action: "auth.revoke_all", targetType: "user", targetId: principal.id, outcome: "success" }),
    ]);
    return c.body(null, 204);
  })
  .openapi(jwksRoute, async (c) => {
    const jwks = await publicJwks(requireSettings(c.env, "identity"));
    return c.json(jwks as { keys: Record<string, unknown>[] }, 200, { "Cache-Control": "public, max-age=300" });
  });
