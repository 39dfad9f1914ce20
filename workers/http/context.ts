import type { Principal } from "../identity/principal.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";
import type { Logger } from "../shared/logger.ts";

/** What every request handler can rely on; `principal` and `scope` exist behind `requireAuth` only. */
export interface AppEnv {
  Bindings: Env;
  Variables: {
    correlationId: string;
    clientIp: string;
    log: Logger;
    principal: Principal;
    scope: TenantScope;
  };
}
