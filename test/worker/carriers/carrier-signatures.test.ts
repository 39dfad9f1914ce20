import { describe, expect, it } from "vitest";
import { verifyTelnyxSignature } from "../../../workers/carriers/telnyx/signature.ts";
import type { TwilioParams } from "../../../workers/carriers/twilio/signature.ts";
import { parseTwilioForm, verifyTwilioJsonSignature, verifyTwilioSignature } from "../../../workers/carriers/twilio/signature.ts";

// twilio-node's spec/validation.spec.js vectors.
const TOKEN = "12345";
const URL_SIGNED = "https://mycompany.com/myapp.php?foo=1&bar=2";
const PARAMS: TwilioParams = {
  CallSid: "CA1234567890ABCDE",
  Caller: "+14158675309",
  Digits: "1234",
  From: "+14158675309",
  To: "+18005551212",
};

function twilio(url: string, params: TwilioParams, signature: string | null, authToken = TOKEN) {
  return verifyTwilioSignature({ authToken, url, params, signature });
}

describe("X-Twilio-Signature: twilio-node's vectors", () => {
  const vectors: Array<{ url: string; params: TwilioParams; signature: string }> = [
    { url: URL_SIGNED, params: PARAMS, signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=" },
    { url: "https://mycompany.com:443/myapp.php?foo=1&bar=2", params: PARAMS, signature: "kvajT1Ptam85bY51eRf/AJRuM3w=" },
    { url: "http://mycompany.com:80/myapp.php?foo=1&bar=2", params: PARAMS, signature: "0ZXoZLH/DfblKGATFgpif+LLRf4=" },
    { url: "http://mycompany.com:1234/myapp.php?foo=1&bar=2", params: PARAMS, signature: "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=" },
    {
      url: "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
      params: PARAMS,
      signature: "CukzLTc1tT5dXEDIHm/tKBanW10=",
    },
    {
      url: URL_SIGNED,
      params: { "MessagingBinding.Address": ["+1325xxxxxxx", "+1415xxxxxxx"] },
      signature: "83O6e2vORAoJHUNzJjDWN1jz+BA=",
    },
    {
      url: URL_SIGNED,
      params: { Sid: "CA123", SidAccount: "AC123", Digits: ["5678", "1234", "1234"] },
      signature: "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
    },
  ];

  it.each(vectors)("$signature verifies at the URL it was computed over, and only with its token", async (vector) => {
    expect(await twilio(vector.url, vector.params, vector.signature)).toBe(true);
    expect(await twilio(vector.url, vector.params, vector.signature, "54321")).toBe(false);
  });

  it("accepts a signature over the default-port URL when the request URL has no port, and the reverse", async () => {
    // Twilio may sign https://host:443/… while we know the URL as https://host/…, or the other way round.
    expect(await twilio(URL_SIGNED, PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w=")).toBe(true);
    expect(await twilio("https://mycompany.com:443/myapp.php?foo=1&bar=2", PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")).toBe(true);
    expect(await twilio("http://mycompany.com/myapp.php?foo=1&bar=2", PARAMS, "0ZXoZLH/DfblKGATFgpif+LLRf4=")).toBe(true);
  });

  it("does not add a non-default port that was never in the request URL", async () => {
    expect(await twilio("http://mycompany.com/myapp.php?foo=1&bar=2", PARAMS, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=")).toBe(false);
    // The https vector is not valid for http either: the scheme is part of the signed data.
    expect(await twilio("http://mycompany.com/myapp.php?foo=1&bar=2", PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")).toBe(false);
  });

  it("verifies repeated form fields decoded by parseTwilioForm", async () => {
    const binding = parseTwilioForm("MessagingBinding.Address=%2B1325xxxxxxx&MessagingBinding.Address=%2B1415xxxxxxx");
    expect(binding).toEqual({ "MessagingBinding.Address": ["+1325xxxxxxx", "+1415xxxxxxx"] });
    expect(await twilio(URL_SIGNED, binding, "83O6e2vORAoJHUNzJjDWN1jz+BA=")).toBe(true);

    const digits = parseTwilioForm("Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234");
    expect(digits).toEqual({ Sid: "CA123", SidAccount: "AC123", Digits: ["5678", "1234", "1234"] });
    expect(await twilio(URL_SIGNED, digits, "IK+Dwps556ElfBT0I3Rgjkr1wJU=")).toBe(true);
  });

  it("verifies a JSON body through bodySHA256", async () => {
    const rawBody = '{"property": "value", "boolean": true}';
    const bodyHash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const url = `${URL_SIGNED}&bodySHA256=${bodyHash}`;
    const signature = "a9nBmqA0ju/hNViExpshrM61xv4=";
    expect(await verifyTwilioJsonSignature({ authToken: TOKEN, url, rawBody, signature })).toBe(true);
    // The signature still matches the URL, but the body no longer matches the hash in it.
    const tampered = rawBody.replace("true", "false");
    expect(await verifyTwilioJsonSignature({ authToken: TOKEN, url, rawBody: tampered, signature })).toBe(false);
    expect(await verifyTwilioJsonSignature({ authToken: TOKEN, url: URL_SIGNED, rawBody, signature })).toBe(false);
    expect(await verifyTwilioJsonSignature({ authToken: TOKEN, url, rawBody, signature: null })).toBe(false);
  });
});

describe("X-Twilio-Signature: URL forms twilio-node also accepts", () => {
  // Signatures computed with twilio-node 6.2 getExpectedTwilioSignature over the URL in the comment.
  it("matches the WHATWG-normalised URL (' escaped as %27)", async () => {
    // …?name=O%27Brien
    expect(await twilio("https://mycompany.com/myapp.php?name=O'Brien", PARAMS, "63OYf/RgPCg9QtIjvw15Tcp1Cgk=")).toBe(true);
  });

  it("matches the query as Node's legacy querystring re-serialises it, with the default port", async () => {
    // https://mycompany.com:443/myapp.php?2=x&b=A&a=%20 (integer-like names first, escapes normalised)
    const signature = "YfTP4XqrHnjHUNun8g/lLYBaaK0=";
    expect(await twilio("https://mycompany.com/myapp.php?b=%41&2=x&a=+", PARAMS, signature)).toBe(true);
    expect(await twilio("https://mycompany.com/myapp.php?b=%41&a=+", PARAMS, signature)).toBe(false);
  });
});

describe("X-Twilio-Signature: rejections", () => {
  const signature = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

  it("rejects a missing or empty signature", async () => {
    expect(await twilio(URL_SIGNED, PARAMS, null)).toBe(false);
    expect(await twilio(URL_SIGNED, PARAMS, "")).toBe(false);
  });

  it("rejects a tampered parameter, an extra parameter and a missing parameter", async () => {
    expect(await twilio(URL_SIGNED, { ...PARAMS, Digits: "1235" }, signature)).toBe(false);
    expect(await twilio(URL_SIGNED, { ...PARAMS, CallStatus: "completed" }, signature)).toBe(false);
    const { Digits: _dropped, ...withoutDigits } = PARAMS;
    expect(await twilio(URL_SIGNED, withoutDigits, signature)).toBe(false);
  });

  it("rejects a different token, URL or query", async () => {
    expect(await twilio(URL_SIGNED, PARAMS, signature, "12346")).toBe(false);
    expect(await twilio("https://mycompany.com/myapp.php?foo=1&bar=3", PARAMS, signature)).toBe(false);
    expect(await twilio("https://evil.example/myapp.php?foo=1&bar=2", PARAMS, signature)).toBe(false);
  });

  it("rejects a signature that differs only in case or padding", async () => {
    expect(await twilio(URL_SIGNED, PARAMS, signature.toLowerCase())).toBe(false);
    expect(await twilio(URL_SIGNED, PARAMS, signature.replace("=", ""))).toBe(false);
  });

  it("refuses to run with an empty auth token", async () => {
    await expect(twilio(URL_SIGNED, PARAMS, signature, "")).rejects.toThrow(/auth token is empty/);
  });
});

describe("parseTwilioForm", () => {
  it("decodes + and %XX, keeps single fields as strings and a leading ? as part of the name", () => {
    expect(parseTwilioForm("From=%2B14158675309&CallerName=Ada+Lovelace&To=client%3Aalice")).toEqual({
      From: "+14158675309",
      CallerName: "Ada Lovelace",
      To: "client:alice",
    });
    expect(parseTwilioForm("?a=1")).toEqual({ "?a": "1" });
    expect(parseTwilioForm("")).toEqual({});
  });

  it("keeps a field named __proto__ as data", () => {
    const fields = parseTwilioForm("__proto__=x&CallSid=CA1");
    expect(Object.keys(fields)).toEqual(["__proto__", "CallSid"]);
    expect(Object.getPrototypeOf(fields)).toBe(Object.prototype);
  });
});

// A self-made vector (Ed25519 seed = bytes 0x00..0x1f).
const TELNYX_PUBLIC_KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
const TELNYX_TIMESTAMP = "1700000000";
const TELNYX_BODY =
  '{"data":{"event_type":"call.initiated","id":"e1","occurred_at":"2023-11-14T22:13:20Z","payload":{"call_control_id":"v3:abc","call_leg_id":"leg-1","call_session_id":"sess-1","direction":"incoming","from":"+15550001111","to":"+15550002222","state":"parked"},"record_type":"event"}}';
const TELNYX_SIGNATURE = "ivx+093TXJwvaHbjdC70c2JJX6RugPdPHCi9Q8dxDm6LDIPIJ34ATYSEjhCavOniBTtYhNukcq2Jrfg+tobwDQ==";
const SKEW = 300;

function telnyx(overrides: { rawBody?: string; signature?: string | null; timestamp?: string | null; nowSeconds?: number }) {
  return verifyTelnyxSignature({
    publicKey: TELNYX_PUBLIC_KEY,
    rawBody: TELNYX_BODY,
    signature: TELNYX_SIGNATURE,
    timestamp: TELNYX_TIMESTAMP,
    nowSeconds: Number(TELNYX_TIMESTAMP),
    maxSkewSeconds: SKEW,
    ...overrides,
  });
}

describe("Telnyx Ed25519 signature: a fixed vector", () => {
  it("verifies the vector, also at both edges of the window", async () => {
    expect(await telnyx({})).toEqual({ ok: true });
    expect(await telnyx({ nowSeconds: Number(TELNYX_TIMESTAMP) + SKEW })).toEqual({ ok: true });
    expect(await telnyx({ nowSeconds: Number(TELNYX_TIMESTAMP) - SKEW })).toEqual({ ok: true });
  });

  it("rejects one changed body byte, a re-serialised body and a different timestamp as bad_signature", async () => {
    const changedByte = TELNYX_BODY.replace("leg-1", "leg-2");
    expect(await telnyx({ rawBody: changedByte })).toEqual({ ok: false, reason: "bad_signature" });
    const reserialised = JSON.stringify(JSON.parse(TELNYX_BODY), null, 1);
    expect(await telnyx({ rawBody: reserialised })).toEqual({ ok: false, reason: "bad_signature" });
    expect(await telnyx({ timestamp: "1700000001" })).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("rejects an altered signature as bad_signature", async () => {
    const flipped = TELNYX_SIGNATURE.replace("ivx+", "ivx/");
    expect(await telnyx({ signature: flipped })).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("rejects timestamps beyond the window, past or future, as stale", async () => {
    expect(await telnyx({ nowSeconds: Number(TELNYX_TIMESTAMP) + SKEW + 1 })).toEqual({ ok: false, reason: "stale" });
    expect(await telnyx({ nowSeconds: Number(TELNYX_TIMESTAMP) - SKEW - 1 })).toEqual({ ok: false, reason: "stale" });
  });

  it("rejects missing headers", async () => {
    expect(await telnyx({ signature: null })).toEqual({ ok: false, reason: "missing_headers" });
    expect(await telnyx({ timestamp: null })).toEqual({ ok: false, reason: "missing_headers" });
    expect(await telnyx({ signature: "", timestamp: "" })).toEqual({ ok: false, reason: "missing_headers" });
  });

  it.each([
    ["garbage base64", { signature: "not base64 at all!" }],
    ["unpadded base64", { signature: TELNYX_SIGNATURE.replace(/=+$/, "") }],
    ["a 63-byte signature", { signature: btoa("x".repeat(63)) }],
    ["a 65-byte signature", { signature: btoa("x".repeat(65)) }],
    ["a signed timestamp", { timestamp: "+1700000000" }],
    ["a fractional timestamp", { timestamp: "1700000000.5" }],
    ["a timestamp beyond safe integers", { timestamp: "99999999999999999999" }],
  ])("rejects %s as malformed", async (_label, overrides) => {
    expect(await telnyx(overrides)).toEqual({ ok: false, reason: "malformed" });
  });

  it("throws on a public key that is not 32 bytes of base64: that is configuration, not the request", async () => {
    const verdict = verifyTelnyxSignature({
      publicKey: btoa("x".repeat(31)),
      rawBody: TELNYX_BODY,
      signature: TELNYX_SIGNATURE,
      timestamp: TELNYX_TIMESTAMP,
      nowSeconds: Number(TELNYX_TIMESTAMP),
      maxSkewSeconds: SKEW,
    });
    await expect(verdict).rejects.toThrow(/32 raw Ed25519 bytes/);
  });
});
