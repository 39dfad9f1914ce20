import { z } from "zod";

/**
 * Every setting in the external contract, parsed by one schema. Each setting is parsed on its own so that one
 * malformed value is reported by name without hiding the others; consumers ask for the group they need and get
 * a ConfigurationError naming exactly what is missing or malformed.
 */

import { type ProviderName, providerSchema } from "./provider-names.ts";

export { type ProviderName, providerSchema };

/** Empty strings come from `[vars]` placeholders and unset secrets: treat them as absent. */
const optional = <T extends z.ZodType>(schema: T) => z.preprocess((value) => (value === "" ? undefined : value), schema.optional());

const httpUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" });
const wsUrl = z.url({ protocol: /^wss?$/, error: "must be a ws(s) URL" });
const origin = httpUrl.refine((value) => URL.canParse(value) && new URL(value).pathname === "/" && !new URL(value).search, {
  error: "must be an origin only (no path or query)",
});

/** Comma-separated CIDRs; a bare address means itself alone (/32 for IPv4, /128 for IPv6). */
const cidrList = z
  .string()
  .transform((value) =>
    value
      .split(",")
      .map((part) => part.trim())
      .filter(Boolean)
      .map((part) => (part.includes("/") ? part : `${part}/${part.includes(":") ? 128 : 32}`)),
  )
  .pipe(z.array(z.string().regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, { error: "must be comma-separated CIDRs" })));

/** Browser origins allowed to call the API cross-origin: `https://console.example.com`, comma-separated. */
const originList = z
  .string()
  .transform((value) =>
    value
      .split(",")
      .map((part) => part.trim().replace(/\/$/, ""))
      .filter(Boolean),
  )
  .pipe(
    z.array(
      z.string().refine((value) => URL.canParse(value) && new URL(value).origin === value, {
        error: "must be comma-separated origins (scheme://host[:port])",
      }),
    ),
  );

const providerList = z
  .string()
  .transform((value) =>
    value
      .split(",")
      .map((part) => part.trim())
      .filter(Boolean),
  )
  .pipe(z.array(providerSchema).min(1));

const privateEd25519Jwk = z.looseObject({
  kty: z.literal("OKP"),
  crv: z.literal("Ed25519"),
  kid: z.string().min(1),
  x: z.string().min(1),
  d: z.string().min(1),
});

const jwkSet = z
  .string()
  .transform((value, ctx) => {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      ctx.addIssue({ code: "custom", message: "must be JSON" });
      return z.NEVER;
    }
  })
  .pipe(
    z
      .object({ keys: z.array(privateEd25519Jwk).min(1) })
      .refine((set) => new Set(set.keys.map((key) => key.kid)).size === set.keys.length, { error: "kids must be unique" }),
  );

const base64Key32 = z.string().refine(
  (value) => {
    try {
      return atob(value).length === 32;
    } catch {
      return false;
    }
  },
  { error: "must be base64 of a raw 32-byte Ed25519 public key" },
);

/**
 * A Sentry DSN, `https://<public key>@<host>/<project id>`. Anything else is reported and leaves error reporting
 * off: a typo must not send the platform's errors to someone else's project.
 */
const sentryDsn = z.url({ protocol: /^https$/, error: "must be an https URL" }).refine(
  (value) => {
    if (!URL.canParse(value)) return false;
    const url = new URL(value);
    return url.username !== "" && url.password === "" && /^\/\d+$/.test(url.pathname) && !url.search;
  },
  { error: "must be a Sentry DSN (https://<key>@<host>/<project id>)" },
);

const settingSchemas = {
  PUBLIC_BASE_URL: optional(origin),
  TWILIO_ACCOUNT_SID: optional(z.string().regex(/^AC[0-9a-fA-F]{32}$/, { error: "must be AC + 32 hex digits" })),
  TWILIO_AUTH_TOKEN: optional(z.string().min(16)),
  // Signs the per-call credential carriers' media streams present (workers/carriers/media-credential.ts).
  MEDIA_STREAM_SECRET: optional(z.string().min(32, { error: "must be at least 32 characters" })),
  TWILIO_API_BASE: optional(origin).default("https://api.twilio.com"),
  TELNYX_API_KEY: optional(z.string().min(8)),
  TELNYX_PUBLIC_KEY: optional(base64Key32),
  TELNYX_CONNECTION_ID: optional(z.string().min(1)),
  TELNYX_API_BASE: optional(origin).default("https://api.telnyx.com"),
  OPENAI_API_KEY: optional(z.string().min(8)),
  // OpenAI's HTTP APIs (text intents from WhatsApp); the Realtime socket has its own URL.
  OPENAI_API_BASE: optional(origin).default("https://api.openai.com"),
  OPENAI_REALTIME_URL: optional(wsUrl).default("wss://api.openai.com/v1/realtime"),
  GEMINI_API_KEY: optional(z.string().min(8)),
  GEMINI_LIVE_URL: optional(wsUrl).default(
    "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
  ),
  // Google's REST APIs (post-call analysis with generateContent); the Live socket has its own URL.
  GEMINI_API_BASE: optional(origin).default("https://generativelanguage.googleapis.com"),
  DEEPGRAM_API_KEY: optional(z.string().min(8)),
  DEEPGRAM_AGENT_URL: optional(wsUrl).default("wss://agent.deepgram.com/v1/agent/converse"),
  DEFAULT_PROVIDER: optional(providerSchema),
  PROVIDER_ORDER: optional(providerList).default(["openai", "gemini", "deepgram", "local"]),
  TWILIO_IP_ALLOWLIST: optional(cidrList).default([]),
  TELNYX_IP_ALLOWLIST: optional(cidrList).default([
    "192.76.120.128/29",
    "192.76.120.136/29",
    "192.76.120.144/29",
    "185.246.41.0/29",
    "185.246.41.8/29",
    "185.246.41.16/29",
    "103.115.244.0/29",
    "103.115.244.8/29",
  ]),
  WEBHOOK_MAX_SKEW_SECONDS: optional(z.coerce.number().int().min(1).max(3600)).default(300),
  JWT_SIGNING_KEYS: optional(jwkSet),
  JWT_ISSUER: optional(z.string().min(1)),
  JWT_AUDIENCE: optional(z.string().min(1)),
  METRICS_TOKEN: optional(z.string().min(16)),
  // Error reporting (workers/shared/error-reporting.ts): off unless set.
  SENTRY_DSN: optional(sentryDsn),
  // None by default; a malformed list allows none (the browser's same-origin rule stays in force).
  CORS_ALLOWED_ORIGINS: optional(originList).default([]),
  // Provider resilience inside each call's object (defaults: the audited system's).
  PROVIDER_BREAKER_FAILURES: optional(z.coerce.number().int().min(1).max(100)).default(5),
  PROVIDER_BREAKER_OPEN_SECONDS: optional(z.coerce.number().min(0.05).max(3600)).default(60),
  PROVIDER_BREAKER_HALF_OPEN_TRIALS: optional(z.coerce.number().int().min(1).max(100)).default(3),
  PROVIDER_BREAKER_SUCCESSES: optional(z.coerce.number().int().min(1).max(100)).default(2),
  PROVIDER_RECONNECT_BASE_MS: optional(z.coerce.number().int().min(1).max(60_000)).default(1000),
  PROVIDER_RECONNECT_ATTEMPTS: optional(z.coerce.number().int().min(0).max(20)).default(5),
  PROVIDER_RESPONSE_TIMEOUT_MS: optional(z.coerce.number().int().min(100).max(120_000)).default(15_000),
  PROVIDER_FAILOVER_AFTER_MS: optional(z.coerce.number().int().min(0).max(120_000)).default(1000),
  PROVIDER_FLEET_CHECK_SECONDS: optional(z.coerce.number().min(0).max(3600)).default(10),
  OPENAI_SESSION_ROLLOVER_MINUTES: optional(z.coerce.number().min(0.05).max(120)).default(55),
  // Load shedding (durable-objects/call/load-shedding.ts): a new call or session is turned away while its object's
  // isolate reads its calls' audio this late (every call there hears it that late already); 0 turns shedding off.
  CALL_SHEDDING_LATENESS_MS: optional(z.coerce.number().int().min(0).max(60_000)).default(300),
  // A web session nobody joins as the caller ends after this long (its provider session is billed meanwhile).
  WEB_SESSION_JOIN_TIMEOUT_SECONDS: optional(z.coerce.number().min(1).max(86_400)).default(120),
  // WhatsApp Cloud API (workers/whatsapp/): the app secret signs Meta's deliveries, the verify token answers its
  // subscription challenge, the access token and phone number id send replies.
  WHATSAPP_APP_SECRET: optional(z.string().min(16, { error: "must be at least 16 characters" })),
  WHATSAPP_VERIFY_TOKEN: optional(z.string().min(8, { error: "must be at least 8 characters" })),
  WHATSAPP_ACCESS_TOKEN: optional(z.string().min(16, { error: "must be at least 16 characters" })),
  WHATSAPP_PHONE_NUMBER_ID: optional(z.string().regex(/^\d{5,32}$/, { error: "must be the digits of a phone number id" })),
  WHATSAPP_API_BASE: optional(origin).default("https://graph.facebook.com"),
  HUMAN_TRANSFER_NUMBER: optional(z.string().regex(/^\+[1-9]\d{6,14}$/, { error: "must be an E.164 number" })),
  // Fleet-wide provider health (durable-objects/provider-health; defaults: the audited system's).
  PROVIDER_HEALTH_LATENCY_WARNING_MS: optional(z.coerce.number().int().min(1).max(120_000)).default(1000),
  PROVIDER_HEALTH_LATENCY_ERROR_MS: optional(z.coerce.number().int().min(1).max(120_000)).default(3000),
  PROVIDER_HEALTH_MIN_SUCCESS_RATE: optional(z.coerce.number().min(0).max(1)).default(0.95),
  PROVIDER_HEALTH_OFFLINE_AFTER: optional(z.coerce.number().int().min(1).max(100)).default(3),
  PROVIDER_HEALTH_PROBE_SECONDS: optional(z.coerce.number().min(1).max(3600)).default(30),
  // Payment reminders (workers/business/reminders): a failed send is retried after base × 2^(attempt − 1), up to the
  // attempt limit, then the reminder is `failed`.
  REMINDER_RETRY_BASE_SECONDS: optional(z.coerce.number().min(0.05).max(3600)).default(60),
  REMINDER_MAX_ATTEMPTS: optional(z.coerce.number().int().min(1).max(20)).default(5),
  // Post-call analysis (workers/shared/analysis/): unset, the first text model with a key (OpenAI, then Gemini), else the
  // offline engine (workers/shared/analysis/engines.ts `analysisEngineOf`).
  ANALYSIS_PROVIDER: optional(z.enum(["openai", "gemini", "local"])),
  // Recordings (durable-objects/recording/, workers/recordings/): the key signs recording links; without it (or too
  // short to be a key) links are refused, recording itself goes on.
  RECORDING_SIGNING_KEY: optional(z.string().min(32, { error: "must be at least 32 characters" })),
  RECORDING_URL_TTL_SECONDS: optional(
    z.coerce
      .number()
      .int()
      .min(10)
      .max(7 * 86_400),
  ).default(900),
  // Sender of privacy erasure codes (the `EMAIL` send_email binding); unset, no erasure can be requested.
  EMAIL_FROM: optional(z.email({ error: "must be an email address" })),
} as const;

type SettingName = keyof typeof settingSchemas;
export type Settings = { [K in SettingName]: z.output<(typeof settingSchemas)[K]> };

/** The settings each capability cannot run without. */
const requiredBy = {
  identity: ["JWT_SIGNING_KEYS", "JWT_ISSUER", "JWT_AUDIENCE"],
  publicUrls: ["PUBLIC_BASE_URL"],
  // The webhook guard's layers fail closed: a malformed allowlist or skew refuses the carrier's traffic rather than
  // falling back to a default that would let more through.
  twilio: ["PUBLIC_BASE_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_IP_ALLOWLIST", "MEDIA_STREAM_SECRET"],
  telnyx: [
    "PUBLIC_BASE_URL",
    "TELNYX_API_KEY",
    "TELNYX_PUBLIC_KEY",
    "TELNYX_CONNECTION_ID",
    "TELNYX_IP_ALLOWLIST",
    "WEBHOOK_MAX_SKEW_SECONDS",
    "MEDIA_STREAM_SECRET",
  ],
  metrics: ["METRICS_TOKEN"],
  mediaStreams: ["MEDIA_STREAM_SECRET"],
  recordingLinks: ["RECORDING_SIGNING_KEY"],
  // Each WhatsApp duty fails closed on its own: no app secret, no message is accepted; no verify token, no
  // subscription is confirmed; no access token, nothing is sent.
  whatsappVerify: ["WHATSAPP_VERIFY_TOKEN"],
  whatsappWebhook: ["WHATSAPP_APP_SECRET"],
  whatsappSend: ["WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_API_BASE"],
  // Without a sender no code can reach the admin, so no erasure can be confirmed: it is refused up front.
  privacyEmail: ["EMAIL_FROM"],
} as const satisfies Record<string, readonly SettingName[]>;
export type Capability = keyof typeof requiredBy;

const REQUIRED_SOMEWHERE = new Set<SettingName>(Object.values(requiredBy).flat());

/** The settings that `/health` insists on: without them nothing useful runs. */
const HEALTH_CRITICAL: readonly Capability[] = ["identity", "publicUrls"];

export interface SettingProblem {
  setting: SettingName;
  problem: string;
}

export interface ParsedSettings {
  /**
   * Every setting's value. A malformed one is reported in `problems` and takes its default (a tuning knob keeps
   * working), except the settings a capability requires: those stay absent, so `requireSettings` refuses.
   */
  values: Settings;
  problems: SettingProblem[];
}

export class ConfigurationError extends Error {
  constructor(readonly problems: SettingProblem[]) {
    super(`Invalid configuration: ${problems.map((p) => `${p.setting} ${p.problem}`).join("; ")}`);
    this.name = "ConfigurationError";
  }
}

const cache = new WeakMap<object, ParsedSettings>();

/** Parses every setting once per env object (the env object is stable for an isolate). */
export function parseSettings(env: object): ParsedSettings {
  const cached = cache.get(env);
  if (cached) return cached;
  const source = env as Record<string, unknown>;
  const values: Record<string, unknown> = {};
  const problems: SettingProblem[] = [];
  for (const name of Object.keys(settingSchemas) as SettingName[]) {
    const result = settingSchemas[name].safeParse(source[name]);
    if (result.success) {
      values[name] = result.data;
      continue;
    }
    problems.push({ setting: name, problem: result.error.issues[0]?.message ?? "is malformed" });
    if (!REQUIRED_SOMEWHERE.has(name)) values[name] = settingSchemas[name].safeParse(undefined).data;
  }
  const parsed: ParsedSettings = { values: values as Settings, problems };
  cache.set(env, parsed);
  return parsed;
}

type Required<C extends Capability> = Settings & { [K in (typeof requiredBy)[C][number]]: NonNullable<Settings[K]> };

/** The settings a capability needs, or a ConfigurationError naming each missing or malformed one. */
export function requireSettings<C extends Capability>(env: object, capability: C): Required<C> {
  const parsed = parseSettings(env);
  const problems = problemsFor(parsed, requiredBy[capability]);
  if (problems.length > 0) throw new ConfigurationError(problems);
  return parsed.values as Required<C>;
}

/** Every problem `/health` should report: malformed settings anywhere, and missing critical ones. */
export function healthProblems(env: object): SettingProblem[] {
  const parsed = parseSettings(env);
  const critical = HEALTH_CRITICAL.flatMap((capability) => requiredBy[capability]);
  const missing = problemsFor(parsed, critical).filter((p) => !parsed.problems.includes(p));
  return [...parsed.problems, ...missing];
}

function problemsFor(parsed: ParsedSettings, names: readonly SettingName[]): SettingProblem[] {
  return names.flatMap((name) => {
    const malformed = parsed.problems.find((p) => p.setting === name);
    if (malformed) return [malformed];
    return parsed.values[name] === undefined ? [{ setting: name, problem: "is missing" }] : [];
  });
}
