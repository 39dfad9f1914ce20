import { describe, expect, it } from "vitest";
import { compileAllowlist } from "../../../workers/carriers/ip-allowlist.ts";
import { parseSettings } from "../../../workers/shared/settings.ts";

// Telnyx's documented webhook and media source ranges (also the TELNYX_IP_ALLOWLIST default).
const TELNYX_RANGES = [
  "192.76.120.128/29",
  "192.76.120.136/29",
  "192.76.120.144/29",
  "185.246.41.0/29",
  "185.246.41.8/29",
  "185.246.41.16/29",
  "103.115.244.0/29",
  "103.115.244.8/29",
];

describe("compileAllowlist: layer off", () => {
  it("is disabled and allows everything, even garbage, when no entry is given", () => {
    for (const cidrs of [[], [""], [" ", ""]]) {
      const allowlist = compileAllowlist(cidrs);
      expect(allowlist.enabled).toBe(false);
      expect(allowlist.allows("203.0.113.9")).toBe(true);
      expect(allowlist.allows("not an ip")).toBe(true);
    }
  });
});

describe("compileAllowlist: Telnyx default ranges", () => {
  const telnyx = compileAllowlist(TELNYX_RANGES);

  it("is enabled", () => {
    expect(telnyx.enabled).toBe(true);
  });

  it.each([
    "192.76.120.128",
    "192.76.120.135",
    "192.76.120.136",
    "192.76.120.151",
    "185.246.41.0",
    "185.246.41.23",
    "103.115.244.0",
    "103.115.244.15",
  ])("allows %s", (ip) => {
    expect(telnyx.allows(ip)).toBe(true);
  });

  it.each([
    "192.76.120.127", // just below the first block
    "192.76.120.152", // just above the third
    "185.246.41.24",
    "103.115.244.16",
    "103.115.243.255",
    "10.0.0.1",
    "0.0.0.0",
    "255.255.255.255",
  ])("refuses %s", (ip) => {
    expect(telnyx.allows(ip)).toBe(false);
  });

  it("matches IPv4-mapped IPv6 spellings of the same addresses", () => {
    expect(telnyx.allows("::ffff:192.76.120.130")).toBe(true);
    expect(telnyx.allows("::FFFF:c04c:7882")).toBe(true); // 192.76.120.130 in hex groups
    expect(telnyx.allows("0:0:0:0:0:ffff:185.246.41.1")).toBe(true);
    expect(telnyx.allows("::ffff:192.76.120.127")).toBe(false);
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 forms are other addresses.
    expect(telnyx.allows("::192.76.120.130")).toBe(false);
    expect(telnyx.allows("64:ff9b::192.76.120.130")).toBe(false);
  });

  it("refuses IPv6 addresses outside the mapped range", () => {
    expect(telnyx.allows("2001:db8::1")).toBe(false);
    expect(telnyx.allows("::1")).toBe(false);
  });
});

describe("compileAllowlist: IPv4 prefixes", () => {
  it("treats /0 as everything IPv4 and /32 (or no prefix) as one address", () => {
    const all = compileAllowlist(["0.0.0.0/0"]);
    expect(all.allows("1.2.3.4")).toBe(true);
    expect(all.allows("255.255.255.255")).toBe(true);
    expect(all.allows("2001:db8::1")).toBe(false);

    for (const entry of ["198.51.100.7/32", "198.51.100.7"]) {
      const single = compileAllowlist([entry]);
      expect(single.allows("198.51.100.7")).toBe(true);
      expect(single.allows("198.51.100.6")).toBe(false);
      expect(single.allows("198.51.100.8")).toBe(false);
    }
  });

  it("handles prefixes that do not fall on an octet boundary", () => {
    const allowlist = compileAllowlist(["172.16.0.0/12", "3.251.214.32/27"]);
    expect(allowlist.allows("172.16.0.0")).toBe(true);
    expect(allowlist.allows("172.31.255.255")).toBe(true);
    expect(allowlist.allows("172.32.0.0")).toBe(false);
    expect(allowlist.allows("172.15.255.255")).toBe(false);
    expect(allowlist.allows("3.251.214.63")).toBe(true);
    expect(allowlist.allows("3.251.214.64")).toBe(false);
  });

  it("ignores host bits after the prefix and surrounding blanks", () => {
    const allowlist = compileAllowlist([" 10.1.2.3/8 "]);
    expect(allowlist.allows("10.255.0.1")).toBe(true);
    expect(allowlist.allows("11.0.0.0")).toBe(false);
  });

  it("handles the top bit of a word (no sign trouble)", () => {
    const allowlist = compileAllowlist(["128.0.0.0/1"]);
    expect(allowlist.allows("128.0.0.0")).toBe(true);
    expect(allowlist.allows("255.255.255.255")).toBe(true);
    expect(allowlist.allows("127.255.255.255")).toBe(false);
  });
});

describe("compileAllowlist: IPv6 prefixes", () => {
  it("parses :: compression anywhere, case-insensitively", () => {
    const allowlist = compileAllowlist(["2001:DB8::/32"]);
    expect(allowlist.allows("2001:db8::")).toBe(true);
    expect(allowlist.allows("2001:0db8:ffff:ffff:ffff:ffff:ffff:ffff")).toBe(true);
    expect(allowlist.allows("2001:db9::")).toBe(false);
    expect(allowlist.allows("2001:db7:ffff::1")).toBe(false);
  });

  it("matches /128, /0 and prefixes inside a 32-bit word", () => {
    const single = compileAllowlist(["fe80::1:2/128"]);
    expect(single.allows("fe80:0:0:0:0:0:1:2")).toBe(true);
    expect(single.allows("fe80::1:3")).toBe(false);

    const everything = compileAllowlist(["::/0"]);
    expect(everything.allows("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")).toBe(true);
    // IPv4 is held as ::ffff:a.b.c.d, which ::/0 spans.
    expect(everything.allows("192.0.2.1")).toBe(true);

    const odd = compileAllowlist(["2001:db8:8000::/33"]);
    expect(odd.allows("2001:db8:8000::1")).toBe(true);
    expect(odd.allows("2001:db8:ffff::1")).toBe(true);
    expect(odd.allows("2001:db8:7fff::1")).toBe(false);
  });

  it("accepts :: standing for a single zero group, at either end", () => {
    expect(compileAllowlist(["1:2:3:4:5:6:7::/128"]).allows("1:2:3:4:5:6:7:0")).toBe(true);
    expect(compileAllowlist(["::2:3:4:5:6:7:8/128"]).allows("0:2:3:4:5:6:7:8")).toBe(true);
    expect(compileAllowlist(["::/128"]).allows("0:0:0:0:0:0:0:0")).toBe(true);
  });

  it("lets an IPv4-mapped v6 entry match plain IPv4 clients", () => {
    const allowlist = compileAllowlist(["::ffff:192.76.120.128/125"]);
    expect(allowlist.allows("192.76.120.135")).toBe(true);
    expect(allowlist.allows("192.76.120.136")).toBe(false);
  });
});

describe("compileAllowlist: malformed input", () => {
  it.each([
    "10.0.0.0/33",
    "2001:db8::/129",
    "10.0.0.0/",
    "10.0.0.0/-1",
    "10.0.0.0/08",
    "10.0.0.0/8/8",
    "10.0.0/8",
    "10.0.0.256/32",
    "010.0.0.0/8",
    "0x0a.0.0.0/8",
    "1:2:3:4:5:6:7:8:9/128",
    "1:2:3:4:5:6:7/128",
    "1::2::3/64",
    "1:2:3:4:5:6:7:8::/128",
    "12345::/16",
    "fe80::1%eth0/64",
    "[2001:db8::]/32",
    "1.2.3.4::/128",
    "example.com/32",
  ])("refuses the entry %s, naming it", (entry) => {
    expect(() => compileAllowlist(["192.0.2.0/24", entry])).toThrow(`"${entry}"`);
  });

  it.each([
    "",
    "1.2.3",
    "1.2.3.4.5",
    "1.2.3.04",
    "256.1.1.1",
    " 192.76.120.130",
    "192.76.120.130/32",
    ":::",
    ":1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:",
    "::ffff:192.76.120",
    "::ffff:192.76.120.130:1",
    "g::1",
    "[::1]",
  ])("never matches the malformed client address %j", (ip) => {
    expect(compileAllowlist(["0.0.0.0/0", "::/0"]).allows(ip)).toBe(false);
  });
});

describe("allowlist settings", () => {
  it("take a bare address as itself alone (/32, /128), and still refuse what is not an address", () => {
    const { values, problems } = parseSettings({ TWILIO_IP_ALLOWLIST: "203.0.113.10, 2001:db8::1, 198.51.100.0/24" });
    expect(problems.filter((problem) => problem.setting === "TWILIO_IP_ALLOWLIST")).toEqual([]);
    expect(values.TWILIO_IP_ALLOWLIST).toEqual(["203.0.113.10/32", "2001:db8::1/128", "198.51.100.0/24"]);
    const allowlist = compileAllowlist(values.TWILIO_IP_ALLOWLIST);
    expect(allowlist.allows("203.0.113.10")).toBe(true);
    expect(allowlist.allows("203.0.113.11")).toBe(false);
    expect(allowlist.allows("2001:db8::1")).toBe(true);
    expect(allowlist.allows("2001:db8::2")).toBe(false);
    const malformed = parseSettings({ TWILIO_IP_ALLOWLIST: "203.0.113.10, example.com" });
    expect(malformed.problems.map((problem) => problem.setting)).toContain("TWILIO_IP_ALLOWLIST");
    expect(malformed.values.TWILIO_IP_ALLOWLIST).toBeUndefined();
  });
});
