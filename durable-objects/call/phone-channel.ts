import { carrierNamed } from "../../workers/carriers/registry.ts";
import { type ProviderName, parseSettings } from "../../workers/shared/settings.ts";
import type { MediaSockets } from "../media/media-sockets.ts";
import type { CallerChannel } from "../session/caller-channel.ts";
import { controlCall } from "./call-commands.ts";
import type { CallLedger } from "./call-ledger.ts";
import type { CarrierLink } from "./carrier-link.ts";
import { isTerminal } from "./state-machine.ts";

interface PhoneChannelParts {
  env: Env;
  ledger: CallLedger;
  media: MediaSockets;
  carrier: () => CarrierLink;
  waitUntil(task: Promise<unknown>): void;
}

/** A phone call's caller: a carrier leg, its media stream and its commands. Only used while the object holds a call. */
export function phoneChannel(parts: PhoneChannelParts): CallerChannel {
  const { ledger } = parts;
  const call = () => ledger.record!;
  const command = (action: { action: "hangup" } | { action: "transfer"; to: string }) =>
    controlCall(ledger, parts.carrier, action, call().correlationId);
  return {
    identity() {
      const record = call();
      return {
        channel: "phone",
        sessionId: record.sessionId,
        tenantId: record.tenantId,
        provider: record.provider,
        instructions: record.instructions,
        prompt: record.prompt ?? null,
        metadata: { channel: "phone", direction: record.direction, from: record.from, to: record.to, carrier: record.carrier },
        correlationId: record.correlationId,
        ended: isTerminal(record.status),
        remoteNumber: record.direction === "inbound" ? record.from : record.to,
      };
    },
    get callAudio() {
      const record = call();
      return { encoding: carrierNamed(record.carrier).mediaEncoding(record.codec), sampleRate: 8000 } as const;
    },
    leg: () => parts.media.leg(),
    async hangup(reason) {
      const result = await command({ action: "hangup" });
      ledger.log().info("voice.hangup", { reason, ok: result.ok });
    },
    async transfer(reason) {
      const to = parseSettings(parts.env).values.HUMAN_TRANSFER_NUMBER;
      if (!to) return JSON.stringify({ ok: false, error: "No human agent is available right now." });
      const result = await command({ action: "transfer", to });
      ledger.log().info("voice.transfer", { reason, ok: result.ok });
      return JSON.stringify(result.ok ? { ok: true, status: result.status } : { ok: false, error: result.message });
    },
    providerChanged(provider: ProviderName) {
      const record = call();
      record.provider = provider;
      ledger.note("system", "provider.switched", { from: record.status, to: null, outcome: "applied", detail: provider });
      parts.waitUntil(ledger.flush());
    },
  };
}
