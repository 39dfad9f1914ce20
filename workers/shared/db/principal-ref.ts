/** Who acted: a user (with the token they used) or an API key. Pure type, so the web console can read `/live` types. */
export type PrincipalRef = { kind: "user"; id: string; tokenId: string; issuedAt: number } | { kind: "api_key"; id: string };
