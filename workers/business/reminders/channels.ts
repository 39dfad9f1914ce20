import { CarrierApiError } from "../../carriers/carrier-api-error.ts";
import { callerIds, placeOutboundCall } from "../../carriers/outbound-call.ts";
import { carrierNamed } from "../../carriers/registry.ts";
import type { REMINDER_CHANNELS } from "../../shared/db/schema.ts";
import type { TenantScope } from "../../shared/db/tenant-scope.ts";
import { AppError } from "../../shared/errors.ts";
import { ConfigurationError, requireSettings } from "../../shared/settings.ts";
import { currencyMinorDigits } from "../../shared/tenant-settings.ts";
import { sendWhatsAppText, WhatsAppSendError } from "../whatsapp-client.ts";

export type ReminderChannelName = (typeof REMINDER_CHANNELS)[number];

/** What a channel needs to deliver one reminder. */
export interface ReminderDelivery {
  reminderId: string;
  to: string;
  customerName: string;
  message: string;
  amount: number | null;
  currency: string;
  correlationId: string;
}

/**
 * Why a delivery did not happen. `retryable` only when the message certainly did not go (the carrier refused with a
 * 429 or 5xx before accepting it): a timeout or a lost connection may have sent it, and a reminder sent twice is
 * worse than one that failed where an operator can see it.
 */
export class DeliveryError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = "DeliveryError";
  }
}

/** One way of delivering a reminder; answers the id the far side gave it (message id, call's session id). */
export interface ReminderChannel {
  send(env: Env, scope: TenantScope, delivery: ReminderDelivery): Promise<{ externalId: string }>;
}

/** An amount in the minor unit, written in its currency, exactly (the decimal string never passes through a float). */
export function formatAmount(minor: number, currency: string): string {
  const digits = currencyMinorDigits(currency);
  const text = String(minor).padStart(digits + 1, "0");
  const decimal = digits === 0 ? text : `${text.slice(0, -digits)}.${text.slice(-digits)}`;
  const format = new Intl.NumberFormat("en", { style: "currency", currency, minimumFractionDigits: digits, maximumFractionDigits: digits });
  return format.format(decimal as Intl.StringNumericLiteral);
}

/** The reminder as one text: the shop's message, then the amount due when there is one. */
export const reminderText = (delivery: ReminderDelivery) =>
  delivery.amount === null ? delivery.message : `${delivery.message} Amount due: ${formatAmount(delivery.amount, delivery.currency)}.`;

/** A carrier's refusal as a delivery error: retried only when the carrier answered that it did not take it. */
function carrierFailure(error: unknown): DeliveryError {
  if (error instanceof CarrierApiError) {
    // No answer, or a 2xx whose message id could not be read: the carrier may well have taken the message.
    if (error.status === undefined || (error.status >= 200 && error.status < 300))
      return new DeliveryError("outcome_unknown", error.message, false);
    return new DeliveryError("carrier_refused", error.message, error.retryable);
  }
  if (error instanceof AppError) return new DeliveryError(error.code, error.message, false);
  return new DeliveryError("send_failed", error instanceof Error ? error.message.slice(0, 200) : "send failed", false);
}

/** SMS from the tenant's first number on a configured carrier, through that carrier's messaging API. */
const sms: ReminderChannel = {
  async send(env, scope, delivery) {
    const [sender] = (await callerIds(env, scope)).candidates;
    if (!sender) throw new DeliveryError("no_sender", "The tenant has no number on a configured carrier to text from", false);
    try {
      const { messageId } = await carrierNamed(sender.carrier).sendSms(env, {
        from: sender.from,
        to: delivery.to,
        body: reminderText(delivery),
      });
      return { externalId: messageId };
    } catch (error) {
      throw carrierFailure(error);
    }
  },
};

/** The agent's brief for a reminder call: who it calls, what to say, and that it only reminds. */
export const reminderInstructions = (delivery: ReminderDelivery) =>
  [
    `You are calling ${delivery.customerName} on behalf of the shop with a payment reminder.`,
    `Greet them by name, then say the reminder: "${delivery.message}".`,
    delivery.amount === null ? "" : `The amount due is ${formatAmount(delivery.amount, delivery.currency)}.`,
    "Answer briefly if they ask about it, thank them, and end the call. Do not take payment details on this call.",
  ]
    .filter(Boolean)
    .join(" ");

/** An outbound call whose agent says the reminder; placed (the carrier took it) counts as sent. */
const call: ReminderChannel = {
  async send(env, scope, delivery) {
    let placed: Awaited<ReturnType<typeof placeOutboundCall>>;
    try {
      placed = await placeOutboundCall(env, scope, {
        to: delivery.to,
        instructions: reminderInstructions(delivery),
        correlationId: delivery.correlationId,
      });
    } catch (error) {
      throw carrierFailure(error);
    }
    const { result } = placed;
    if (!result.ok) {
      // Refused at the tenant's concurrency limit (or the limit unchecked), or shed, nothing was dialled: try again
      // later. A dial every carrier failed may still have rung (a timeout), and the call's object already failed over:
      // final.
      if (result.admission)
        throw new DeliveryError(result.admission === "overloaded" ? "overloaded" : "concurrency_limit", result.reason, true);
      throw new DeliveryError("call_failed", result.reason, false);
    }
    return { externalId: placed.sessionId };
  },
};

/**
 * A WhatsApp text from the platform's business number (Cloud API). Meta delivers free-form text only within 24 hours of
 * the customer's last message. A refusal in the answer (4xx) is final here like any other; one Meta reports later in a
 * receipt (131047) fails the reminder then (receipts.ts).
 */
const whatsapp: ReminderChannel = {
  async send(env, _scope, delivery) {
    let settings: ReturnType<typeof requireSettings<"whatsappSend">>;
    try {
      settings = requireSettings(env, "whatsappSend");
    } catch (error) {
      if (error instanceof ConfigurationError) throw new DeliveryError("channel_unavailable", "WhatsApp is not configured", false);
      throw error;
    }
    try {
      return { externalId: await sendWhatsAppText(settings, delivery.to, reminderText(delivery)) };
    } catch (error) {
      if (!(error instanceof WhatsAppSendError)) throw carrierFailure(error);
      // No status: it may have been sent (a timeout), so it is not tried again.
      if (error.status === null) throw new DeliveryError("outcome_unknown", error.message, false);
      throw new DeliveryError("whatsapp_refused", error.message, error.retryable);
    }
  },
};

export const reminderChannels: Readonly<Record<ReminderChannelName, ReminderChannel>> = { sms, call, whatsapp };
