/**
 * Source-address allowlists for carrier webhooks (CIDR lists from settings). Every address is held as 128 bits;
 * IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`), so `192.0.2.1` and `::ffff:192.0.2.1` are the same address and a
 * v4 entry matches both spellings. Consequently a v6 entry spanning `::ffff:0:0/96` (such as `::/0`) covers all of IPv4.
 */

export type IpAllowlist = { readonly enabled: boolean; allows(ip: string): boolean };

/** Four 32-bit words, most significant first. */
type Address = readonly [number, number, number, number];
type Rule = { readonly network: Address; readonly mask: Address };

const IPV4_MAPPED_PREFIX = 96;

/**
 * Blank entries are ignored, so an empty setting (`"".split(",")`) turns the layer off: `enabled` is false and every
 * address is allowed. A malformed entry throws an error naming it; host bits after the prefix are ignored
 * (`10.0.0.1/8` is `10.0.0.0/8`); an entry without a prefix is a single address.
 */
export function compileAllowlist(cidrs: readonly string[]): IpAllowlist {
  const rules = cidrs
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map(parseRule);
  if (rules.length === 0) return { enabled: false, allows: () => true };
  return {
    enabled: true,
    allows(ip) {
      const address = parseAddress(ip);
      return address !== null && rules.some((rule) => covers(rule, address.words));
    },
  };
}

/**
 * The unit a source address is counted by: an IPv4 address however it is spelled, or an IPv6 address's /64 (one
 * subscriber's allocation: rotating through its 2^64 addresses must not buy a fresh budget each). Text that is not
 * an address counts as itself.
 */
export function sourceBlock(ip: string): string {
  const address = parseAddress(ip);
  if (address === null) return ip;
  const [high, second, third, low] = address.words;
  if (high === 0 && second === 0 && third === 0xffff) return `v4:${low}`;
  return `v6:${high.toString(16)}:${second.toString(16)}::/64`;
}

function parseRule(entry: string): Rule {
  const [addressText = "", prefixText, ...extra] = entry.split("/");
  const address = parseAddress(addressText);
  const maxPrefix = address?.ipv4 ? 32 : 128;
  const prefix = prefixText === undefined ? maxPrefix : /^(0|[1-9]\d{0,2})$/.test(prefixText) ? Number(prefixText) : NaN;
  if (address === null || extra.length > 0 || !(prefix <= maxPrefix)) {
    throw new Error(`Malformed CIDR in IP allowlist: "${entry}"`);
  }
  const mask = maskWords(address.ipv4 ? IPV4_MAPPED_PREFIX + prefix : prefix);
  return { mask, network: applyMask(address.words, mask) };
}

function covers(rule: Rule, address: Address): boolean {
  for (let i = 0; i < 4; i++) if ((address[i]! & rule.mask[i]!) >>> 0 !== rule.network[i]) return false;
  return true;
}

function maskWords(prefix: number): Address {
  const word = (index: number) => {
    const bits = Math.min(32, Math.max(0, prefix - 32 * index));
    return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  };
  return [word(0), word(1), word(2), word(3)];
}

function applyMask(address: Address, mask: Address): Address {
  return [(address[0] & mask[0]) >>> 0, (address[1] & mask[1]) >>> 0, (address[2] & mask[2]) >>> 0, (address[3] & mask[3]) >>> 0];
}

function parseAddress(text: string): { words: Address; ipv4: boolean } | null {
  const ipv4 = parseIpv4(text);
  if (ipv4 !== null) return { words: [0, 0, 0xffff, ipv4], ipv4: true };
  const groups = parseIpv6Groups(text);
  if (groups === null) return null;
  const word = (index: number) => groups[2 * index]! * 0x10000 + groups[2 * index + 1]!;
  return { words: [word(0), word(1), word(2), word(3)], ipv4: false };
}

/** Dotted quad, decimal only: leading zeros (octal in some parsers), hex and short forms are refused. */
function parseIpv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return null;
    value = value * 256 + Number(part);
  }
  return value;
}

/** Eight 16-bit groups; `::` stands for one or more zero groups; a dotted quad may end the address. */
function parseIpv6Groups(text: string): number[] | null {
  const pieces = text.split("::");
  if (pieces.length > 2) return null;
  const compressed = pieces.length === 2;
  const head = hexGroups(pieces[0]!, !compressed);
  const tail = compressed ? hexGroups(pieces[1]!, true) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (compressed ? missing < 1 : missing !== 0) return null;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

function hexGroups(piece: string, mayEndWithIpv4: boolean): number[] | null {
  if (piece === "") return [];
  const parts = piece.split(":");
  const groups: number[] = [];
  for (const [index, part] of parts.entries()) {
    if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
      groups.push(parseInt(part, 16));
      continue;
    }
    const ipv4 = mayEndWithIpv4 && index === parts.length - 1 ? parseIpv4(part) : null;
    if (ipv4 === null) return null;
    groups.push(Math.floor(ipv4 / 0x10000), ipv4 % 0x10000);
  }
  return groups;
}
