import type { Carrier, CarrierName } from "./carrier.ts";
import { telnyx } from "./telnyx/index.ts";
import { twilio } from "./twilio/index.ts";

/** Every carrier the platform speaks, by name: the one place carriers are listed. */
export const carriers: Readonly<Record<CarrierName, Carrier>> = { twilio, telnyx };

export const carrierNamed = (name: CarrierName): Carrier => carriers[name];
