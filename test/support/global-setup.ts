import type { TestProject } from "vitest/node";
import { startCarrierApis } from "../simulators/carriers/index.ts";
import { startMailbox } from "../simulators/email/index.ts";
import { providerSimulatorSettings, startProviderSimulator } from "../simulators/providers/index.ts";
import { startWhatsAppSimulator } from "../simulators/whatsapp/index.ts";
import { TEST_WHATSAPP_ACCESS_TOKEN, TEST_WHATSAPP_PHONE_NUMBER_ID } from "./test-settings.ts";

/**
 * Starts the simulated third parties once per test run and hands their addresses to the tests. Each simulator
 * module registers itself here as it is added.
 */
export default async function setup(project: TestProject) {
  const stops: Array<() => Promise<void>> = [];
  const providers = await startProviderSimulator();
  stops.push(providers.stop);
  const carriers = await startCarrierApis();
  stops.push(carriers.stop);
  const whatsapp = await startWhatsAppSimulator({
    accessToken: TEST_WHATSAPP_ACCESS_TOKEN,
    phoneNumberId: TEST_WHATSAPP_PHONE_NUMBER_ID,
    openAiKey: providers.apiKeys.openai,
    geminiKey: providers.apiKeys.gemini,
  });
  stops.push(whatsapp.stop);
  const mailbox = await startMailbox();
  stops.push(mailbox.stop);
  project.provide("simulators", {
    ...providerSimulatorSettings(providers),
    TWILIO_API_BASE: carriers.twilioBaseUrl,
    TELNYX_API_BASE: carriers.telnyxBaseUrl,
    CARRIER_SIM_CONTROL_URL: carriers.controlUrl,
    WHATSAPP_API_BASE: whatsapp.url,
    OPENAI_API_BASE: whatsapp.url,
    GEMINI_API_BASE: whatsapp.url,
    WHATSAPP_SIM_CONTROL_URL: whatsapp.url,
    MAILBOX_URL: mailbox.url,
  });
  return async () => {
    for (const stop of stops.reverse()) await stop();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    simulators: Record<string, string>;
  }
}
