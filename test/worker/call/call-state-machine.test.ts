import { beforeAll, describe, expect, it } from "vitest";
import { decideTransition, isTerminal, type TransitionSource } from "../../../durable-objects/call/state-machine.ts";
import { CALL_STATUSES, type CallStatus } from "../../../workers/shared/db/schema.ts";
import { type CallEventView, callByCarrierId, openTwilioCall, tenantWithNumbers, twilioStatus } from "../support/calls.ts";

/**
 * Property tests of the call state machine: first the pure decision function over thousands of seeded random event
 * sequences, then random shuffled and duplicated Twilio status callbacks through the real Worker and call object.
 * The table below is written from the platform contract, not copied from the implementation:
 * initiated → ringing → in_progress ⇄ on_hold → transferring → transferred, ending in completed or failed.
 * Ringing is not always reported (a call may be answered straight from initiated), a failed transfer returns the
 * caller to in_progress, and any live call can end.
 */
const CONTRACT_MOVES: Record<CallStatus, readonly CallStatus[]> = {
  initiated: ["ringing", "in_progress", "completed", "failed"],
  ringing: ["in_progress", "completed", "failed"],
  in_progress: ["on_hold", "transferring", "completed", "failed"],
  on_hold: ["in_progress", "transferring", "completed", "failed"],
  transferring: ["transferred", "in_progress", "completed", "failed"],
  transferred: ["completed", "failed"],
  completed: [],
  failed: [],
};

/** How far along a call is. Carriers report progress; hold and resume (same rank) are ours alone. */
const RANK: Record<CallStatus, number> = {
  initiated: 0,
  ringing: 1,
  in_progress: 2,
  on_hold: 2,
  transferring: 3,
  transferred: 4,
  completed: 5,
  failed: 5,
};
const SOURCES: readonly TransitionSource[] = ["carrier", "api", "system"];

/** mulberry32: a small seeded PRNG, so a failure names a sequence that can be replayed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
  };
}

function shuffle<T>(items: T[], random: ReturnType<typeof prng>): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

describe("decideTransition (pure)", () => {
  it("applies exactly the contract's moves for our own API and system, and nothing else from anyone", () => {
    for (const from of CALL_STATUSES) {
      for (const to of CALL_STATUSES) {
        const inTable = CONTRACT_MOVES[from].includes(to);
        for (const source of SOURCES) {
          const verdict = decideTransition(from, to, source);
          expect({ from: verdict.from, to: verdict.to }).toEqual({ from, to });
          if (!inTable) expect(verdict.outcome, `${source}: ${from} → ${to}`).not.toBe("applied");
          if (source !== "carrier") expect(verdict.outcome === "applied", `${source}: ${from} → ${to}`).toBe(inTable);
        }
        // Carriers may make exactly the contract's strictly forward moves.
        expect(decideTransition(from, to, "carrier").outcome === "applied", `carrier: ${from} → ${to}`).toBe(
          inTable && RANK[to] > RANK[from],
        );
      }
    }
  });

  it("over 5,000 seeded random sequences: no backward carrier move, nothing leaves a terminal state, every move is in the table", () => {
    const seed = 20261122;
    const random = prng(seed);
    const reached = new Set<CallStatus>();
    let applied = 0;
    for (let run = 0; run < 5_000; run++) {
      let state: CallStatus = run % 4 === 0 ? random.pick(CALL_STATUSES) : "initiated";
      const steps = 1 + random.int(30);
      for (let step = 0; step < steps; step++) {
        // Half the draws follow the table, so sequences get deep into the machine instead of stalling at the start.
        const to: CallStatus =
          random.next() < 0.5 && CONTRACT_MOVES[state].length > 0 ? random.pick(CONTRACT_MOVES[state]) : random.pick(CALL_STATUSES);
        const source = random.pick(SOURCES);
        const verdict = decideTransition(state, to, source);
        const where = `seed ${seed}, run ${run}, step ${step}: ${source} ${state} → ${to}`;
        if (isTerminal(state)) expect(verdict.outcome, where).not.toBe("applied");
        if (state === to) expect(verdict, where).toMatchObject({ outcome: "ignored", why: "same_state" });
        if (verdict.outcome === "applied") {
          expect(CONTRACT_MOVES[state], where).toContain(to);
          if (source === "carrier") expect(RANK[to], where).toBeGreaterThan(RANK[state]);
          state = to;
          applied += 1;
        }
        reached.add(state);
      }
    }
    // The generator is not degenerate: it reached every state and applied plenty of moves.
    expect([...reached].sort()).toEqual([...CALL_STATUSES].sort());
    expect(applied).toBeGreaterThan(5_000);
  });
});

describe("Twilio status callbacks through the Worker and the call's object", () => {
  let token: string;
  let number: string;

  beforeAll(async () => {
    const fixture = await tenantWithNumbers([{ carrier: "twilio" }]);
    token = fixture.token;
    number = fixture.numbers[0]!;
  });

  const ENDINGS: Record<string, { status: CallStatus; reason: string | null }> = {
    completed: { status: "completed", reason: null },
    busy: { status: "failed", reason: "busy" },
    "no-answer": { status: "failed", reason: "no_answer" },
    canceled: { status: "failed", reason: "canceled" },
    failed: { status: "failed", reason: "carrier_failure" },
  };

  function checkHistory(events: CallEventView[], where: string) {
    const moves = events.filter((e) => e.outcome === "applied" && e.toStatus !== null && e.fromStatus !== null);
    for (const move of moves) {
      expect(CONTRACT_MOVES[move.fromStatus!], `${where}: ${move.event}`).toContain(move.toStatus);
      if (move.source === "carrier")
        expect(RANK[move.toStatus!], `${where}: backward ${move.event}`).toBeGreaterThan(RANK[move.fromStatus!]);
    }
    const terminalAt = moves.findIndex((m) => isTerminal(m.toStatus!));
    expect(terminalAt, `${where}: exactly one terminal move, the last`).toBe(moves.length - 1);
  }

  it("random shuffled, duplicated and concurrent deliveries always end in the terminal the sequence implies", async () => {
    const seed = 7_331;
    const random = prng(seed);
    for (let trial = 0; trial < 12; trial++) {
      const ending = trial % 2 === 0 ? "completed" : random.pick(Object.keys(ENDINGS));
      const statuses = [
        ...(random.next() < 0.5 ? ["initiated"] : []),
        "ringing",
        ...(ending === "completed" ? ["in-progress"] : []),
        ending,
      ];
      const call = await openTwilioCall(number);
      // Each delivery 1–3 times; a retry carries the same idempotency token, or (half the trials) none at all.
      const withTokens = random.next() < 0.5;
      const deliveries = shuffle(
        statuses.flatMap((status, sequence) => {
          const token = withTokens ? `tok-${crypto.randomUUID()}` : undefined;
          return Array.from({ length: 1 + random.int(3) }, () => ({ status, sequence, token }));
        }),
        random,
      );
      while (deliveries.length > 0) {
        const batch = deliveries.splice(0, 1 + random.int(4));
        const responses = await Promise.all(
          batch.map((d) => twilioStatus(call.callSid, number, d.status, { sequence: d.sequence, ...(d.token ? { token: d.token } : {}) })),
        );
        expect(responses.map((r) => r.status)).toEqual(batch.map(() => 204));
      }

      const where = `seed ${seed}, trial ${trial}, ${statuses.join(",")}`;
      const detail = await callByCarrierId(token, call.callSid);
      const expected = ENDINGS[ending]!;
      expect({ status: detail.status, failureReason: detail.failureReason }, where).toEqual({
        status: expected.status,
        failureReason: expected.reason,
      });
      // Every distinct delivery is in the history exactly once, however often it came.
      for (let sequence = 0; sequence < statuses.length; sequence++) {
        expect(
          detail.events.filter((e) => e.carrierSequence === sequence),
          `${where}: sequence ${sequence}`,
        ).toHaveLength(1);
      }
      checkHistory(detail.events, where);
    }
  });
});
