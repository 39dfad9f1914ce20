import { createLocalJWKSet, importJWK, type JSONWebKeySet, type JWK, jwtVerify, SignJWT } from "jose";
import { z } from "zod";
import { ROLES } from "../shared/db/schema.ts";
import type { Settings } from "../shared/settings.ts";

/** Access tokens: EdDSA (Ed25519) JWTs, 15 minutes. The first key of JWT_SIGNING_KEYS signs; every key verifies. */
export const ACCESS_TOKEN_TTL_SECONDS = 15 * 60;
const ALGORITHM = "EdDSA";

export const accessClaimsSchema = z.object({
  sub: z.string().min(1),
  tenant: z.string().min(1),
  role: z.enum(ROLES),
  jti: z.string().min(1),
  iat: z.number().int(),
  exp: z.number().int(),
  /** The refresh-token family this token came from, so logout can end the family too. */
  sid: z.string().optional(),
});
export type AccessClaims = z.infer<typeof accessClaimsSchema>;

type IdentitySettings = Pick<Settings, "JWT_ISSUER" | "JWT_AUDIENCE"> & {
  JWT_SIGNING_KEYS: { keys: Array<{ kid: string } & Record<string, unknown>> };
};

interface KeyRing {
  signingKid: string;
  signingKey: CryptoKey;
  publicSet: JSONWebKeySet;
  verify: ReturnType<typeof createLocalJWKSet>;
}

const rings = new WeakMap<object, Promise<KeyRing>>();

/** Imports the key set once per settings object (per isolate), not per request. */
function keyRing(settings: IdentitySettings): Promise<KeyRing> {
  let ring = rings.get(settings.JWT_SIGNING_KEYS);
  if (!ring) {
    ring = buildKeyRing(settings.JWT_SIGNING_KEYS.keys);
    rings.set(settings.JWT_SIGNING_KEYS, ring);
  }
  return ring;
}

async function buildKeyRing(keys: Array<{ kid: string } & Record<string, unknown>>): Promise<KeyRing> {
  const [first] = keys;
  if (!first) throw new Error("JWT_SIGNING_KEYS has no keys");
  // Publish only the public members: key_ops/ext from the private JWK would forbid verification.
  const publicKeys: JWK[] = keys.map((key) => ({ kty: "OKP", crv: "Ed25519", x: key.x, kid: key.kid, alg: ALGORITHM, use: "sig" }) as JWK);
  const publicSet = { keys: publicKeys };
  const { key_ops: _ops, ext: _ext, ...privateJwk } = first;
  const signingKey = (await importJWK({ ...privateJwk, alg: ALGORITHM } as JWK, ALGORITHM)) as CryptoKey;
  return { signingKid: first.kid, signingKey, publicSet, verify: createLocalJWKSet(publicSet) };
}

export async function publicJwks(settings: IdentitySettings): Promise<JSONWebKeySet> {
  return (await keyRing(settings)).publicSet;
}

export async function issueAccessToken(
  settings: IdentitySettings & { JWT_ISSUER: string; JWT_AUDIENCE: string },
  subject: { userId: string; tenantId: string; role: (typeof ROLES)[number]; familyId: string; notBefore: number },
): Promise<{ token: string; claims: AccessClaims }> {
  const ring = await keyRing(settings);
  // Never issue below the user's revocation cutoff (it is rounded up to the next second).
  const iat = Math.max(Math.floor(Date.now() / 1000), subject.notBefore);
  const claims: AccessClaims = {
    sub: subject.userId,
    tenant: subject.tenantId,
    role: subject.role,
    jti: crypto.randomUUID(),
    iat,
    exp: iat + ACCESS_TOKEN_TTL_SECONDS,
    sid: subject.familyId,
  };
  const token = await new SignJWT({ tenant: claims.tenant, role: claims.role, sid: claims.sid })
    .setProtectedHeader({ alg: ALGORITHM, kid: ring.signingKid, typ: "JWT" })
    .setSubject(claims.sub)
    .setJti(claims.jti)
    .setIssuer(settings.JWT_ISSUER)
    .setAudience(settings.JWT_AUDIENCE)
    .setIssuedAt(claims.iat)
    .setExpirationTime(claims.exp)
    .sign(ring.signingKey);
  return { token, claims };
}

/** Verifies signature (EdDSA only, known kid), issuer, audience, time claims and claim shapes; null if any fail. */
export async function verifyAccessToken(
  settings: IdentitySettings & { JWT_ISSUER: string; JWT_AUDIENCE: string },
  token: string,
): Promise<AccessClaims | null> {
  const ring = await keyRing(settings);
  try {
    const { payload } = await jwtVerify(token, ring.verify, {
      algorithms: [ALGORITHM],
      issuer: settings.JWT_ISSUER,
      audience: settings.JWT_AUDIENCE,
      requiredClaims: ["sub", "jti", "iat", "exp"],
      clockTolerance: 5,
    });
    const claims = accessClaimsSchema.safeParse(payload);
    return claims.success ? claims.data : null;
  } catch {
    return null;
  }
}
