import { TEST_TELNYX_API_KEY, TEST_TWILIO_ACCOUNT_SID, TEST_TWILIO_AUTH_TOKEN } from "../../support/test-settings.ts";
import { type PlatformTarget, SimulatorControl } from "./control.ts";
import { type FakeTelnyxApi, startFakeTelnyxApi } from "./fake-telnyx-api.ts";
import { type FakeTwilioApi, startFakeTwilioApi } from "./fake-twilio-api.ts";
import { startHttpServer } from "./http.ts";
import { DEFAULT_TELNYX_SIGNING_SEED, telnyxSigner } from "./signing.ts";
import type { StatusCallbackDelivery } from "./twilio-status-callbacks.ts";

/**
 * The fake carrier REST APIs the platform talks to in tests and local runs: Twilio on one port, Telnyx on
 * another, and the `/__sim` control API (faults, request log, callee behaviours, platform address) on a third.
 * They accept the credentials of test/support/test-settings.ts unless told otherwise.
 */
export type { CalleeBehaviour, FaultSpec, PlatformTarget, RecordedRequest } from "./control.ts";
export { SimulatorControl } from "./control.ts";
export { type CallReport, type SimulateCallOptions, simulateCall } from "./simulate-call.ts";

export interface CarrierApisOptions {
  twilio?: { accountSid?: string; authToken?: string; port?: number };
  telnyx?: { apiKey?: string; signingSeed?: Uint8Array; port?: number };
  controlPort?: number;
  /** Where to drive outbound calls; can also be set later (control.setPlatform, PUT /__sim/platform). */
  platform?: PlatformTarget;
  statusCallbackDelivery?: StatusCallbackDelivery;
  telnyxMedia?: { reorderWindow?: number; duplicateEvery?: number; seed?: number };
  maxCallMs?: number;
}

export interface CarrierApis {
  /** TWILIO_API_BASE for the platform. */
  twilioBaseUrl: string;
  /** TELNYX_API_BASE for the platform. */
  telnyxBaseUrl: string;
  /** CARRIER_SIM_CONTROL_URL: origin of the `/__sim/...` routes. */
  controlUrl: string;
  control: SimulatorControl;
  twilio: FakeTwilioApi;
  telnyx: FakeTelnyxApi;
  stop(): Promise<void>;
}

export async function startCarrierApis(options: CarrierApisOptions = {}): Promise<CarrierApis> {
  const control = new SimulatorControl();
  control.setPlatform(options.platform);
  const twilio = await startFakeTwilioApi({
    accountSid: options.twilio?.accountSid ?? TEST_TWILIO_ACCOUNT_SID,
    authToken: options.twilio?.authToken ?? TEST_TWILIO_AUTH_TOKEN,
    control,
    ...(options.twilio?.port === undefined ? {} : { port: options.twilio.port }),
    ...(options.statusCallbackDelivery ? { statusCallbackDelivery: options.statusCallbackDelivery } : {}),
    ...(options.maxCallMs === undefined ? {} : { maxCallMs: options.maxCallMs }),
  });
  const telnyx = await startFakeTelnyxApi({
    apiKey: options.telnyx?.apiKey ?? TEST_TELNYX_API_KEY,
    control,
    signer: telnyxSigner(options.telnyx?.signingSeed ?? DEFAULT_TELNYX_SIGNING_SEED),
    ...(options.telnyx?.port === undefined ? {} : { port: options.telnyx.port }),
    ...(options.telnyxMedia ? { media: options.telnyxMedia } : {}),
    ...(options.maxCallMs === undefined ? {} : { maxCallMs: options.maxCallMs }),
  });
  const controlServer = await startHttpServer((request, body) => control.handle(request, body), options.controlPort);
  return {
    twilioBaseUrl: twilio.url,
    telnyxBaseUrl: telnyx.url,
    controlUrl: controlServer.url,
    control,
    twilio,
    telnyx,
    async stop() {
      await Promise.all([twilio.close(), telnyx.close(), controlServer.close()]);
    },
  };
}
