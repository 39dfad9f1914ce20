import type { Principal } from "../identity/principal";
import type { TenantScope } from "../shared/db/tenant-scope";
import type { Logger } from "../shared/logger";

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
