import type { D1Migration } from "cloudflare:test";

declare global {
  namespace Cloudflare {
    interface Env {
      TEST_MIGRATIONS: D1Migration[];
      /** Control APIs of the simulated third parties (test/simulators), started by test/support/global-setup.ts. */
      PROVIDER_SIM_CONTROL_URL: string;
      CARRIER_SIM_CONTROL_URL: string;
      WHATSAPP_SIM_CONTROL_URL: string;
      /** What miniflare's send_email emulation wrote to disk, by recipient (test/simulators/email). */
      MAILBOX_URL: string;
    }
  }
}
