import { constantTimeEqualText } from "../../shared/constant-time.ts";
import { sha256Hex, toBase64 } from "../../shared/encoding.ts";
import { hmac } from "../../shared/hmac.ts";

/**
 * X-Twilio-Signature checks, byte for byte what twilio-node's `validateRequest` / `validateRequestWithBody` accept
 * (lib/webhooks/webhooks.js): HMAC-SHA1 keyed by the auth token over the URL followed by the sorted form
 * parameters, tried against every URL spelling twilio-node tries. Pure WebCrypto, so it also runs under Node.
 * Imports carry `.ts` so Node can load this file directly.
 */

/** Decoded form fields; a name sent more than once keeps all its values. */
export type TwilioParams = Record<string, string | string[]>;

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

export async function verifyTwilioSignature(input: {
  authToken: string;
  url: string;
  params: TwilioParams;
  signature: string | null;
}): Promise<boolean> {
  const { signature } = input;
  if (!signature) return false;
  if (input.authToken === "") throw new Error("The Twilio auth token is empty");
  const signedParams = serialiseParams(input.params);
  for (const url of signedUrlCandidates(input.url)) {
    const expected = toBase64(await hmac(input.authToken, url + signedParams, "SHA-1"));
    if (constantTimeEqualText(signature, expected)) return true;
  }
  return false;
}

/**
 * JSON webhooks: the signature covers the URL alone (params `{}`), and the URL's `bodySHA256` query value must be
 * the hex SHA-256 of the raw body.
 */
export async function verifyTwilioJsonSignature(input: {
  authToken: string;
  url: string;
  rawBody: string;
  signature: string | null;
}): Promise<boolean> {
  const claimedBodyHash = URL.parse(input.url)?.searchParams.get("bodySHA256") ?? "";
  const [signatureValid, bodyHash] = await Promise.all([
    verifyTwilioSignature({ authToken: input.authToken, url: input.url, params: {}, signature: input.signature }),
    sha256Hex(input.rawBody),
  ]);
  return signatureValid && constantTimeEqualText(claimedBodyHash, bodyHash);
}

/**
 * A digest of exactly what a valid signature covers (the URL and the sorted parameters): a replay of a signed request
 * has the same digest whatever headers — `I-Twilio-Idempotency-Token` included — it is re-sent with.
 */
export function signedContentDigest(url: string, params: TwilioParams): Promise<string> {
  return sha256Hex(url + serialiseParams(params));
}

/** Decodes an `application/x-www-form-urlencoded` body; repeated names become arrays in arrival order. */
export function parseTwilioForm(rawBody: string): TwilioParams {
  const fields = new Map<string, string[]>();
  // The leading "&" stops URLSearchParams from dropping a "?" that starts the body: this is form data, not a query.
  for (const [name, value] of new URLSearchParams(`&${rawBody}`)) {
    const values = fields.get(name);
    if (values) values.push(value);
    else fields.set(name, [value]);
  }
  // fromEntries defines own properties, so a field named "__proto__" stays a field.
  return Object.fromEntries([...fields].map(([name, values]) => [name, values.length === 1 ? values[0]! : values]));
}

/** Names sorted; a repeated name contributes each distinct value once, values sorted; no separators. */
function serialiseParams(params: TwilioParams): string {
  let data = "";
  for (const name of Object.keys(params).sort()) {
    const value = params[name]!;
    const values = typeof value === "string" ? [value] : [...new Set(value)].sort();
    for (const item of values) data += name + item;
  }
  return data;
}

/**
 * twilio-node accepts the URL as received with its port removed or the default port added; then the same two for
 * the WHATWG-normalised URL (`new URL().toString()`, which escapes e.g. `'` in the query), each also with the
 * query re-serialised by Node's legacy `querystring`.
 */
function signedUrlCandidates(url: string): Set<string> {
  const candidates = new Set([removePort(url), addPort(url)]);
  const normalised = URL.parse(url)?.toString();
  if (normalised !== undefined) {
    for (const variant of [removePort(normalised), addPort(normalised)]) {
      candidates.add(variant);
      candidates.add(withLegacyQuery(variant));
    }
  }
  return candidates;
}

/** Splits without normalising, so path and query keep the exact characters Twilio signed. */
function splitUrl(url: string) {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)/i.exec(url);
  if (!match) return null;
  const [prefix = "", scheme = "", authority = ""] = match;
  const userInfoEnd = authority.lastIndexOf("@");
  const hostAndPort = authority.slice(userInfoEnd + 1);
  // A colon only starts the port after the closing bracket of an IPv6 literal.
  const portStart = hostAndPort.indexOf(":", hostAndPort.lastIndexOf("]") + 1);
  return {
    scheme,
    userInfo: authority.slice(0, userInfoEnd + 1),
    host: portStart === -1 ? hostAndPort : hostAndPort.slice(0, portStart),
    port: portStart === -1 ? "" : hostAndPort.slice(portStart),
    rest: url.slice(prefix.length),
  };
}

function addPort(url: string): string {
  const parts = splitUrl(url);
  if (!parts || parts.port) return url;
  const port = parts.scheme.toLowerCase() === "https://" ? ":443" : ":80";
  return parts.scheme + parts.userInfo + parts.host + port + parts.rest;
}

function removePort(url: string): string {
  const parts = splitUrl(url);
  return parts ? parts.scheme + parts.userInfo + parts.host + parts.rest : url;
}

// Node's querystring.parse reads at most 1000 pairs (empty ones count).
const LEGACY_MAX_PAIRS = 1000;

/** `querystring.stringify(querystring.parse(query))`, as twilio-node applies it to everything after the first `?`. */
function withLegacyQuery(url: string): string {
  const queryStart = url.indexOf("?");
  if (queryStart === -1 || queryStart === url.length - 1) return url;
  // An ordinary object on purpose: its key order (integer-like names first) is the order Node re-serialises in.
  const fields: Record<string, string[]> = {};
  for (const pair of url
    .slice(queryStart + 1)
    .split("&")
    .slice(0, LEGACY_MAX_PAIRS)) {
    if (pair === "") continue;
    const equals = pair.indexOf("=");
    const name = legacyUnescape(equals === -1 ? pair : pair.slice(0, equals));
    const value = equals === -1 ? "" : legacyUnescape(pair.slice(equals + 1));
    if (Object.hasOwn(fields, name)) fields[name]!.push(value);
    // defineProperty, not assignment, so a name like "__proto__" stays a field.
    else Object.defineProperty(fields, name, { value: [value], enumerable: true, writable: true, configurable: true });
  }
  // querystring.escape leaves exactly the characters encodeURIComponent leaves.
  const pairs: string[] = [];
  for (const [name, values] of Object.entries(fields)) {
    for (const value of values) pairs.push(`${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
  }
  return url.slice(0, queryStart + 1) + pairs.join("&");
}

/**
 * Node's querystring.unescape: `+` is a space, valid `%XX` escapes become bytes, anything else stays literal, and
 * the bytes are read as UTF-8 with replacement characters (a BOM is kept).
 */
function legacyUnescape(text: string): string {
  const bytes: number[] = [];
  // With a capture group, split alternates literal text (even indexes) and escaped hex pairs (odd indexes).
  text
    .replaceAll("+", " ")
    .split(/%([0-9a-fA-F]{2})/)
    .forEach((part, index) => {
      if (index % 2 === 1) bytes.push(parseInt(part, 16));
      else bytes.push(...encoder.encode(part));
    });
  return utf8.decode(new Uint8Array(bytes));
}
