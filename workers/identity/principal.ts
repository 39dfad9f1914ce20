import type { Role } from "../shared/db/schema.ts";

/** Who is making an authenticated request. */
export type Principal =
  | {
      kind: "user";
      id: string;
      tenantId: string;
      role: Role;
      jti: string;
      familyId: string | undefined;
      issuedAt: number;
      expiresAt: number;
    }
  | { kind: "api_key"; id: string; tenantId: string; role: Role };
