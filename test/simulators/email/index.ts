import { readdir, readFile, stat } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Reply, startHttpServer } from "../carriers/http.ts";

/**
 * The outbox of miniflare's send_email emulation, readable by tests. The emulation (miniflare's
 * `workers/email/send_email.worker.ts`) parses each message the Worker sends, then writes its raw bytes to
 * `<os tmpdir>/miniflare-<instance>/email/email/<uuid>.eml` and logs only the path, outside the test's isolate. The
 * test pool runs miniflare in this very process, so this server reads those files and answers
 * `GET /messages?to=<address>` with the raw messages to that address, oldest first: a test reads the code from the
 * real email. Other runs on the machine (other worktrees) write to the same tmpdir; each test mails a fresh address.
 */
export interface MailboxSimulator {
  url: string;
  stop(): Promise<void>;
}

async function messagesTo(address: string, since: number): Promise<string[]> {
  const root = tmpdir();
  const instances = (await readdir(root).catch(() => [])).filter((name) => name.startsWith("miniflare-"));
  const found: Array<{ at: number; raw: string }> = [];
  for (const instance of instances) {
    const outbox = join(root, instance, "email", "email");
    for (const file of await readdir(outbox).catch(() => [] as string[])) {
      if (!file.endsWith(".eml")) continue;
      const path = join(outbox, file);
      const info = await stat(path).catch(() => null);
      if (!info || info.mtimeMs < since) continue;
      const raw = await readFile(path, "utf8").catch(() => "");
      if (new RegExp(`^To:.*<?${address.replace(/[.+]/g, "\\$&")}>?\\s*$`, "im").test(raw)) found.push({ at: info.mtimeMs, raw });
    }
  }
  return found.sort((a, b) => a.at - b.at).map((message) => message.raw);
}

export async function startMailbox(): Promise<MailboxSimulator> {
  const startedAt = Date.now();
  const handle = async (request: IncomingMessage): Promise<Reply> => {
    const url = new URL(request.url ?? "/", "http://mailbox");
    const to = url.searchParams.get("to");
    if (request.method !== "GET" || url.pathname !== "/messages" || !to) return { status: 404, body: { error: "not found" } };
    return { status: 200, body: { messages: await messagesTo(to, startedAt) } };
  };
  const server = await startHttpServer(handle);
  return { url: server.url, stop: () => server.close() };
}
