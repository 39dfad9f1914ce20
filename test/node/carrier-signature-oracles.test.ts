import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import querystring from "node:querystring";
import Telnyx from "telnyx";
import { TelnyxWebhookVerificationError } from "telnyx/lib/webhooks";
import { getExpectedBodyHash, getExpectedTwilioSignature, validateRequest, validateRequestWithBody } from "twilio/lib/webhooks/webhooks.js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { verifyTelnyxSignature } from "../../workers/carriers/telnyx/signature.ts";
import type { TwilioParams } from "../../workers/carriers/twilio/signature.ts";
import { parseTwilioForm, verifyTwilioJsonSignature, verifyTwilioSignature } from "../../workers/carriers/twilio/signature.ts";

/**
 * The vendors' own code is the oracle: randomized requests signed by twilio-node and by node:crypto Ed25519 must get
 * the same verdict from our WebCrypto verifiers as from twilio-node's validateRequest and telnyx-node's unwrap.
 * The generator is seeded, so a failure names a case that replays.
 */

/** mulberry32: small, seeded, good enough to spread test cases. */
function seededRandom(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (below: number) => Math.floor(next() * below);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const text = (alphabet: readonly string[], min: number, max: number) =>
    Array.from({ length: min + int(max - min + 1) }, () => pick(alphabet)).join("");
  return { int, pick, text, chance: (probability: number) => next() < probability };
}
type Random = ReturnType<typeof seededRandom>;

// Characters that URL normalisation and Node's legacy querystring treat differently: quotes, stray and invalid
// escapes (%zz, %FF is not UTF-8), a BOM, non-ASCII, and characters new URL() escapes.
const URL_PIECES = [
  "a",
  "Z",
  "0",
  "9",
  "-",
  "_",
  ".",
  "~",
  "'",
  '"',
  "!",
  "*",
  "(",
  ")",
  " ",
  "+",
  "%",
  "%41",
  "%2B",
  "%20",
  "%zz",
  "%FF",
  "%EF%BB%BF",
  "%E2%82%AC",
  "é",
  "€",
  "😀",
  "<",
  ">",
  "`",
  "{",
  "|",
  "^",
  "?",
  "/",
  ":",
  "@",
  ",",
];
const QUERY_NAMES = ["foo", "bar", "Foo", "0", "2", "10", "4294967295", "01", "__proto__", "a b", "%61", "é", ""];
const PARAM_NAMES = ["CallSid", "Caller", "Digits", "From", "To", "a", "A", "B", "ä", "😀", "10", "9", "__proto__", "x.y"];
const PARAM_VALUES = ["", "1234", "+14158675309", "client:alice", "O'Brien", "a b", "é", "😀", "%41", "&=?", "\n"];

function randomQuery(random: Random): string {
  const pairs = Array.from({ length: random.int(6) }, () => {
    if (random.chance(0.1)) return ""; // an empty pair, as in "a=1&&b=2"
    const name = random.chance(0.6) ? random.pick(QUERY_NAMES) : random.text(URL_PIECES, 1, 3);
    return random.chance(0.15) ? name : `${name}=${random.text(URL_PIECES, 0, 4)}`;
  });
  return pairs.join("&");
}

/** The parts of one webhook URL; the port is chosen separately for the URL received and the URL signed. */
function randomUrlParts(random: Random) {
  return {
    scheme: random.pick(["https", "http", "HTTPS"]),
    userInfo: random.pick(["", "", "user:pass@", "user@"]),
    host: random.pick(["mycompany.com", "MyCompany.COM", "127.0.0.1", "[::1]", "[2001:DB8::1]", "bücher.example"]),
    path: `/${random.text([...URL_PIECES.filter((piece) => piece !== "?"), "/", "..", "."], 0, 6)}`,
    query: random.chance(0.8) ? `?${randomQuery(random)}` : "",
  };
}
type UrlParts = ReturnType<typeof randomUrlParts>;

function defaultPort(parts: UrlParts): string {
  return parts.scheme.toLowerCase() === "https" ? ":443" : ":80";
}

function buildUrl(parts: UrlParts, port: string): string {
  return `${parts.scheme}://${parts.userInfo}${parts.host}${port}${parts.path}${parts.query}`;
}

/** twilio-node's private withLegacyQuerystring, written with Node's querystring module itself. */
function legacyQuery(url: string): string {
  const queryStart = url.indexOf("?");
  if (queryStart === -1 || queryStart === url.length - 1) return url;
  return `${url.slice(0, queryStart)}?${querystring.stringify(querystring.parse(url.slice(queryStart + 1)))}`;
}

/** The URL spellings Twilio's signature may have been computed over, for one set of parts. */
function signedSpellings(parts: UrlParts, port: string): string[] {
  const url = buildUrl(parts, port);
  const normalised = new URL(url).toString();
  return [url, normalised, legacyQuery(normalised)];
}

function randomParams(random: Random): TwilioParams {
  const params: TwilioParams = {};
  for (let count = random.int(7); count > 0; count--) {
    const value = random.chance(0.25)
      ? Array.from({ length: 1 + random.int(4) }, () => random.pick(PARAM_VALUES))
      : random.text(PARAM_VALUES, 0, 2);
    Object.defineProperty(params, random.pick(PARAM_NAMES), { value, enumerable: true, writable: true });
  }
  return params;
}

const TOKENS = ["12345", "twilio-auth-token-0123456789abcdef", "tökén with spaces", "😀"];

async function verdicts(authToken: string, signature: string, url: string, params: TwilioParams) {
  return {
    ours: await verifyTwilioSignature({ authToken, url, params, signature }),
    twilio: validateRequest(authToken, signature, url, params),
  };
}

describe("X-Twilio-Signature against twilio-node", () => {
  const CASES = 400;

  it(`accepts ${CASES} randomized requests twilio-node signs and accepts, over every URL spelling`, async () => {
    const random = seededRandom(0x7a11);
    for (let index = 0; index < CASES; index++) {
      const parts = randomUrlParts(random);
      const received = buildUrl(parts, random.pick(["", defaultPort(parts), ":8443"]));
      const receivedPort = received.includes(":8443") ? ":8443" : random.pick(["", defaultPort(parts)]);
      const signedUrl = random.pick(signedSpellings(parts, receivedPort));
      const params = randomParams(random);
      const authToken = random.pick(TOKENS);
      const signature = getExpectedTwilioSignature(authToken, signedUrl, params);
      const context = { index, received, signedUrl, params };

      expect({ ...context, ...(await verdicts(authToken, signature, received, params)) }).toEqual({
        ...context,
        ours: true,
        twilio: true,
      });
    }
  });

  it("re-serialises only the first 1000 query pairs, as Node's querystring.parse reads no more", async () => {
    const query = `?${Array.from({ length: 1005 }, (_, index) => `k${index}=%41`).join("&")}`;
    const parts = { scheme: "https", userInfo: "", host: "mycompany.com", path: "/hook", query };
    const truncated = legacyQuery(buildUrl(parts, ""));
    expect(truncated.split("&")).toHaveLength(1000);
    const signature = getExpectedTwilioSignature("12345", truncated, {});
    const received = buildUrl(parts, "");
    expect(await verdicts("12345", signature, received, {})).toEqual({ ours: true, twilio: true });
  });

  it(`rejects, like twilio-node, ${CASES} randomized requests with one thing changed`, async () => {
    const random = seededRandom(0xbad5);
    for (let index = 0; index < CASES; index++) {
      const parts = randomUrlParts(random);
      const url = buildUrl(parts, "");
      const params = randomParams(random);
      const authToken = random.pick(TOKENS);
      const signature = getExpectedTwilioSignature(authToken, url, params);
      const position = random.int(signature.length - 1); // the last character is always padding "="
      const swapped = signature[position] === "A" ? "B" : "A";
      const mutations: Array<[string, Promise<{ ours: boolean; twilio: boolean }>]> = [
        ["token", verdicts(`${authToken}x`, signature, url, params)],
        ["extra param", verdicts(authToken, signature, url, { ...params, Mutated: "1" })],
        ["value", verdicts(authToken, signature, url, { ...params, [random.pick(PARAM_NAMES)]: "\u0000changed" })],
        ["signature", verdicts(authToken, signature.slice(0, position) + swapped + signature.slice(position + 1), url, params)],
        ["path", verdicts(authToken, signature, buildUrl({ ...parts, path: `${parts.path}x` }, ""), params)],
      ];
      for (const [mutation, verdict] of mutations) {
        expect({ index, mutation, url, ...(await verdict) }).toEqual({ index, mutation, url, ours: false, twilio: false });
      }
    }
  });

  it(`gives twilio-node's verdict when the URL received and the URL signed are picked independently`, async () => {
    const random = seededRandom(0x5eed);
    const seen = { accepted: 0, rejected: 0 };
    for (let index = 0; index < CASES; index++) {
      const parts = randomUrlParts(random);
      const ports = ["", ":", defaultPort(parts), ":80", ":443", ":8443"];
      const received = buildUrl(parts, random.pick(ports));
      const signedUrl = random.pick(signedSpellings(parts, random.pick(ports)));
      const params = randomParams(random);
      const signature = getExpectedTwilioSignature("12345", signedUrl, params);
      const { ours, twilio } = await verdicts("12345", signature, received, params);
      expect({ index, received, signedUrl, ours }).toEqual({ index, received, signedUrl, ours: twilio });
      seen[twilio ? "accepted" : "rejected"]++;
    }
    // Both outcomes must be well represented, or the comparison above proves little.
    expect(seen.accepted).toBeGreaterThan(CASES / 5);
    expect(seen.rejected).toBeGreaterThan(CASES / 5);
  });

  it("decodes form bodies as Node's querystring does, repeated names included, and verifies them", async () => {
    const random = seededRandom(0xf0f0);
    for (let index = 0; index < 100; index++) {
      const params = randomParams(random);
      const body = querystring.stringify(params);
      const decoded = parseTwilioForm(body);
      expect({ index, decoded }).toEqual({ index, decoded: { ...querystring.parse(body) } });
      const url = buildUrl(randomUrlParts(random), "");
      const signature = getExpectedTwilioSignature("12345", url, params);
      expect(await verifyTwilioSignature({ authToken: "12345", url, params: decoded, signature })).toBe(true);
    }
  });

  it("agrees with validateRequestWithBody on JSON bodies signed through bodySHA256", async () => {
    const random = seededRandom(0x15011);
    for (let index = 0; index < 100; index++) {
      const rawBody = JSON.stringify({ text: random.text(PARAM_VALUES, 0, 5), n: random.int(1000) });
      const query = `${random.chance(0.5) ? "?" : "?x=1&"}bodySHA256=${getExpectedBodyHash(rawBody)}`;
      const url = buildUrl({ ...randomUrlParts(random), query }, "");
      const signature = getExpectedTwilioSignature("12345", url, {});
      for (const body of [rawBody, `${rawBody} `]) {
        const ours = await verifyTwilioJsonSignature({ authToken: "12345", url, rawBody: body, signature });
        expect({ index, url, body, ours }).toEqual({
          index,
          url,
          body,
          ours: validateRequestWithBody("12345", signature, url, body),
        });
      }
      expect(await verifyTwilioJsonSignature({ authToken: "12345", url, rawBody, signature })).toBe(true);
    }
  });
});

describe("Telnyx Ed25519 signatures against node:crypto and telnyx-node", () => {
  // telnyx-node reads Date.now() and allows 300 s: pin the clock so both verifiers judge the same instant.
  const NOW_SECONDS = 1_750_000_000;
  const MAX_SKEW_SECONDS = 300;
  beforeAll(() => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(NOW_SECONDS * 1000);
  });
  afterAll(() => {
    vi.useRealTimers();
  });

  const telnyxClient = new Telnyx({ apiKey: "KEY-unused-by-webhook-verification" });
  const keyPairs = Array.from({ length: 3 }, () => generateKeyPairSync("ed25519"));

  function rawPublicKey(publicKey: KeyObject): string {
    const { x } = publicKey.export({ format: "jwk" });
    return Buffer.from(x ?? "", "base64url").toString("base64");
  }

  function signTelnyx(privateKey: KeyObject, timestamp: string, rawBody: string): string {
    return sign(null, Buffer.from(`${timestamp}|${rawBody}`, "utf8"), privateKey).toString("base64");
  }

  async function bothVerdicts(publicKey: string, rawBody: string, signature: string, timestamp: string) {
    const ours = await verifyTelnyxSignature({
      publicKey,
      rawBody,
      signature,
      timestamp,
      nowSeconds: NOW_SECONDS,
      maxSkewSeconds: MAX_SKEW_SECONDS,
    });
    const headers = { "telnyx-signature-ed25519": signature, "telnyx-timestamp": timestamp };
    const telnyx = await telnyxClient.webhooks.unwrap(rawBody, { headers, key: publicKey }).then(
      () => true,
      (error: unknown) => {
        if (error instanceof TelnyxWebhookVerificationError) return false;
        throw error;
      },
    );
    return { ours, telnyx };
  }

  const BODY_TEXT = ["call.initiated", "+15550001111", "é", "😀", '"', "\\", "|", "\n", " ", "v3:abc", "€"];

  it("accepts what node:crypto signs and rejects every tampered variant, as telnyx-node does", async () => {
    const random = seededRandom(0x7e1);
    for (let index = 0; index < 100; index++) {
      const { privateKey, publicKey } = random.pick(keyPairs);
      const otherKey = keyPairs.find((pair) => pair.publicKey !== publicKey)!;
      const key = rawPublicKey(publicKey);
      const envelope = {
        data: { event_type: "call.initiated", id: random.text(BODY_TEXT, 1, 4), payload: { client_state: random.text(BODY_TEXT, 0, 8) } },
      };
      const rawBody = JSON.stringify(envelope, null, random.pick([0, 1, 2]));
      const timestamp = String(NOW_SECONDS - MAX_SKEW_SECONDS + random.int(2 * MAX_SKEW_SECONDS + 1));
      const signature = signTelnyx(privateKey, timestamp, rawBody);
      const changedAt = random.int(rawBody.length);
      const changedBody = rawBody.slice(0, changedAt) + (rawBody[changedAt] === "x" ? "y" : "x") + rawBody.slice(changedAt + 1);

      const cases = [
        { label: "genuine", verdicts: bothVerdicts(key, rawBody, signature, timestamp), ours: { ok: true }, telnyx: true },
        {
          label: "body changed",
          verdicts: bothVerdicts(key, changedBody, signature, timestamp),
          ours: { ok: false, reason: "bad_signature" },
          telnyx: false,
        },
        {
          label: "timestamp changed",
          verdicts: bothVerdicts(key, rawBody, signature, String(Number(timestamp) + (random.chance(0.5) ? 1 : -1))),
          ours: { ok: false, reason: "bad_signature" },
          telnyx: false,
        },
        {
          label: "signed by another key",
          verdicts: bothVerdicts(key, rawBody, signTelnyx(otherKey.privateKey, timestamp, rawBody), timestamp),
          ours: { ok: false, reason: "bad_signature" },
          telnyx: false,
        },
      ];
      for (const { label, verdicts, ours, telnyx } of cases) {
        expect({ index, label, ...(await verdicts) }).toEqual({ index, label, ours, telnyx });
      }
    }
  });

  it("refuses correctly signed requests outside the window, past or future, as telnyx-node does", async () => {
    const { privateKey, publicKey } = keyPairs[0]!;
    const rawBody = '{"data":{"event_type":"call.hangup"}}';
    for (const offset of [-MAX_SKEW_SECONDS - 1, MAX_SKEW_SECONDS + 1, -86_400, 86_400]) {
      const timestamp = String(NOW_SECONDS + offset);
      const verdict = await bothVerdicts(rawPublicKey(publicKey), rawBody, signTelnyx(privateKey, timestamp, rawBody), timestamp);
      expect({ offset, ...verdict }).toEqual({ offset, ours: { ok: false, reason: "stale" }, telnyx: false });
    }
  });

  it("refuses malformed signatures and timestamps without throwing, as telnyx-node does", async () => {
    const { privateKey, publicKey } = keyPairs[0]!;
    const rawBody = '{"data":{"event_type":"call.answered"}}';
    const timestamp = String(NOW_SECONDS);
    const signature = signTelnyx(privateKey, timestamp, rawBody);
    const malformed: Array<[string, string]> = [
      ["not base64!", timestamp],
      [signature.replace(/=+$/, ""), timestamp],
      [Buffer.alloc(63).toString("base64"), timestamp],
      [Buffer.alloc(65).toString("base64"), timestamp],
      [` ${signature}`, timestamp],
      [signature, `${timestamp}.0`],
      [signature, `+${timestamp}`],
      [signature, "1e9"],
    ];
    for (const [badSignature, badTimestamp] of malformed) {
      const verdict = await bothVerdicts(rawPublicKey(publicKey), rawBody, badSignature, badTimestamp);
      expect({ badSignature, badTimestamp, ...verdict }).toEqual({
        badSignature,
        badTimestamp,
        ours: { ok: false, reason: "malformed" },
        telnyx: false,
      });
    }
  });
});
