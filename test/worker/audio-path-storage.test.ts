import { afterEach, describe, expect, it } from "vitest";
import { twilioStatus } from "./support/calls.ts";
import { eventually } from "./support/carriers.ts";
import { openStream, transcriptOf, twilioCallWith } from "./support/media-caller.ts";
import { putScenario, simulatorConnections, uniqueKey } from "./support/provider-simulator.ts";
import { type StorageWrite, watchStorage } from "./support/storage-writes.ts";

/**
 * The regression guard for the call path: a Durable Object's storage write holds every outgoing message of the
 * object (agent audio to the caller, caller audio to the provider) until it is durable, so no write may be issued
 * from the per-frame audio path. The test watches the real object's storage API (every SQL statement that writes,
 * every KV-API put/delete, setAlarm) while a real call streams through the Worker, and records where each write
 * came from. It asserts on what was written and from where, never on time.
 */
/** The per-frame functions: caller frame in (carrier socket → provider), agent chunk out (provider → carrier), marks. */
const PER_FRAME = /\b(callerAudio|forward|agentAudio|markPlayed|onAudio|sendAudio|toProvider|toCaller)\b/;
let writes: StorageWrite[] = [];
let restore: (() => void) | null = null;

afterEach(() => {
  restore?.();
  restore = null;
  writes = [];
});

/** Records each storage write of the session's object, with its stack, from now until the test ends. */
async function watch(sessionId: string): Promise<void> {
  ({ writes, restore } = await watchStorage(sessionId));
}

describe("storage writes and the audio path", () => {
  it("a whole conversation (caller turns, agent audio, marks, a barge-in) issues no storage write from the per-frame path", async () => {
    const key = uniqueKey("audio-path-writes");
    await putScenario(key, {
      replies: [
        "Of course. Your balance is one hundred and twenty dollars, and your next bill is due on the first of next month.",
        "Sure.",
      ],
    });
    const call = await twilioCallWith("openai", key);
    await eventually(async () => (await simulatorConnections(key)).length === 1);
    const caller = await openStream(call, 1);
    await caller.silence(200);
    await watch(call.sessionId);

    // Pure audio both ways: frames in, no turn yet. Nothing may be written.
    await caller.silence(1_000);
    expect(writes.map((write) => write.what)).toEqual([]);

    // A turn, the agent's long reply streaming with its marks echoed, then the caller talking over it.
    await caller.say("hello");
    await caller.silence(700);
    await caller.until(() => caller.agentAudioBytes() >= 8_000);
    await caller.say("interrupt");
    await caller.silence(1_500);
    await transcriptOf(call.token, call.sessionId, (lines) => lines.some((line) => line.interrupted));
    expect(caller.count("clear")).toBeGreaterThan(0);
    expect(caller.count("mark")).toBeGreaterThan(0);

    // The turn's lasting facts (transcript lines, the interruption) were written, but never from a frame handler.
    expect(writes.length).toBeGreaterThan(0);
    const fromFramePath = writes.filter((write) => PER_FRAME.test(write.stack));
    expect(fromFramePath.map((write) => `${write.what}\n${write.stack}`)).toEqual([]);
  });

  it("a call's end saves the conversation with its transition, then empties both outboxes, frees its slot and schedules its analysis in one commit once D1 has them", async () => {
    const key = uniqueKey("end-writes");
    await putScenario(key, { replies: ["Hello, how can I help?"] });
    const call = await twilioCallWith("openai", key);
    const caller = await openStream(call, 1);
    await caller.say("hello");
    await caller.silence(700);
    await caller.until(() => caller.agentAudioBytes() >= 4_000);
    await transcriptOf(call.token, call.sessionId, (lines) => lines.some((line) => line.role === "agent"));
    await watch(call.sessionId);

    // As Twilio ends a call: the stream's `stop` (read first here: its line is written), then the status callback.
    caller.stop();
    await eventually(async () => writes.some((write) => write.stack.includes("onMediaFrame")));
    expect((await twilioStatus(call.callSid, call.number, "completed", { sequence: 9 })).status).toBe(204);
    // What D1 took before the end is deleted in the end's own commit; what the end sent, once D1 has it: both outboxes'
    // entries in one step (one commit), not each in a commit of its own (a ledger drain's, a transcript write-behind's).
    const deletes = () => writes.filter((write) => /^DELETE FROM (outbox|transcript_outbox)\b/.test(write.what));
    const afterD1 = await eventually(async () => {
      const found = deletes().filter((write) => write.stack.includes("forgetSynced"));
      return found.length >= 2 && found;
    });
    expect(afterD1.map((write) => write.what).sort()).toEqual(["DELETE FROM outbox", "DELETE FROM transcript_outbox"]);
    // What the conversation held unsaved was written with the transition that ended the call (one commit), not in a
    // commit of its own as the end's drain began.
    const transcriptWrites = writes.filter((write) => /transcript_outbox/.test(write.what));
    expect(transcriptWrites.some((write) => write.stack.includes("CallSession.callEnded"))).toBe(true);
    expect(transcriptWrites.filter((write) => write.stack.includes("ConversationWriter.flush")).map((write) => write.what)).toEqual([]);
    // Called from the same place: one call of forgetSynced.
    const callerOf = (stack: string, callee = "forgetSynced") => {
      const frames = stack.split("\n");
      return frames[frames.findIndex((frame) => frame.includes(callee)) + 1];
    };
    const [ledger, transcript] = afterD1.map((write) => callerOf(write.stack));
    expect(ledger).toBeDefined();
    expect(transcript).toBe(ledger);
    // The admission slot, given back while D1 took the batch, is marked free and the analysis scheduled (its due time
    // and alarm) in that same run, not each in a commit of its own after it.
    const lastDelete = writes.lastIndexOf(afterD1.at(-1)!);
    expect(writes.slice(lastDelete + 1, lastDelete + 3).map((write) => write.what)).toEqual([
      "kv.put admission_slot",
      "kv.put analysis.due",
    ]);
    const withoutPosition = (frame: string | undefined) => frame?.replace(/:\d+:\d+\)?$/, "");
    expect(withoutPosition(callerOf(writes[lastDelete + 1]!.stack, "AdmissionSlot.save"))).toBe(withoutPosition(ledger));
    expect(writes[lastDelete + 2]?.stack).toContain("schedule");
    expect(writes.filter((write) => write.what === "kv.put admission_slot")).toHaveLength(1);
    await caller.silence(1_200);
    expect(deletes().filter((write) => /\b(drain|writeBehind)\b/.test(write.stack))).toEqual([]);
  });
});
