import { DurableObject } from "cloudflare:workers";

/** One object per session: holds the call's live state. Built out by the carrier and media issues. */
export class CallSession extends DurableObject<Env> {}
