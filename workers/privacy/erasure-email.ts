import { EmailMessage } from "cloudflare:email";

/**
 * The erasure code's email to the admin who asked. No maintained MIME library is installed (`mimetext` is not), so
 * the message is a minimal RFC 5322 text/plain one written here: ASCII only, CRLF line ends, the headers
 * Cloudflare's send_email requires (From matching the envelope sender, To, Message-ID, Date).
 */
export interface CodeEmail {
  from: string;
  to: string;
  code: string;
  requestId: string;
  expiresAt: number;
}

export async function sendErasureCode(binding: SendEmail, email: CodeEmail): Promise<void> {
  const domain = email.from.slice(email.from.lastIndexOf("@") + 1);
  const raw = [
    `From: Switchboard <${email.from}>`,
    `To: <${email.to}>`,
    "Subject: Your privacy erasure code",
    `Message-ID: <${crypto.randomUUID()}@${domain}>`,
    `Date: ${new Date().toUTCString()}`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=us-ascii",
    "Content-Transfer-Encoding: 7bit",
    "",
    "You asked to erase everything held about one person.",
    "",
    `Your confirmation code: ${email.code}`,
    "",
    `It confirms erasure request ${email.requestId} and expires at ${new Date(email.expiresAt).toISOString()}.`,
    "If you did not ask for this, do nothing: without the code nothing is deleted.",
    "",
  ].join("\r\n");
  await binding.send(new EmailMessage(email.from, email.to, raw));
}
