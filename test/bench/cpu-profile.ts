/**
 * A CPU profile of the worker's isolate (the Worker and every call object) over DevTools' Profiler domain, through
 * wrangler's inspector: `load.bench.ts --profile` wraps a platform run with it and prints where the time went; the
 * same inspector samples allocations (`--allocations`, `--promoted`) and snapshots the live heap (`--heap`).
 * Profiling costs time itself: its runs are for finding the path, not for the figures.
 */
import { writeFileSync } from "node:fs";
import WebSocket from "ws";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface Profiler {
  stop(): Promise<Profile>;
}

interface AllocationNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: AllocationNode[];
}

export interface AllocationSampler {
  stop(): Promise<{ head: AllocationNode }>;
}

/**
 * V8's sampling heap profiler over the same inspector, counting every sampled allocation (those already collected by
 * a major GC too, and by a minor one unless `youngToo` is false): where the isolate's garbage comes from, by allocating
 * function — or, without the young generation's, what fills the old one.
 */
export async function startAllocationSampler(inspectorUrl: string, options: { youngToo: boolean }): Promise<AllocationSampler> {
  const call = await inspectorCalls(inspectorUrl);
  await call("HeapProfiler.enable");
  await call("HeapProfiler.startSampling", {
    samplingInterval: 16_384,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: options.youngToo,
  });
  return {
    async stop() {
      const { profile } = (await call("HeapProfiler.stopSampling")) as { profile: { head: AllocationNode } };
      call.close();
      return profile;
    },
  };
}

/** Sampled bytes allocated per function (name, file, line), most first, as table rows. */
export function allocationSummary(head: AllocationNode, top = 25): string[][] {
  const bytes = new Map<string, number>();
  let total = 0;
  const visit = (node: AllocationNode) => {
    const frame = node.callFrame;
    const file = frame.url.replace(/^.*\/(workers|durable-objects|node_modules)\//, "$1/");
    const key = `${frame.functionName || "(anonymous)"} ${file ? `${file}:${frame.lineNumber + 1}` : ""}`.trim();
    bytes.set(key, (bytes.get(key) ?? 0) + node.selfSize);
    total += node.selfSize;
    for (const child of node.children) visit(child);
  };
  visit(head);
  return [...bytes]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, size]) => [name.slice(0, 110), (size / 1024 / 1024).toFixed(1), `${((size / total) * 100).toFixed(1)} %`]);
}

type InspectorCall = ((method: string, params?: Record<string, unknown>) => Promise<unknown>) & {
  close(): void;
  onEvent(method: string, listener: (params: unknown) => void): void;
};

async function inspectorCalls(inspectorUrl: string): Promise<InspectorCall> {
  const socket = new WebSocket(inspectorUrl);
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  let nextId = 0;
  const pending = new Map<number, (result: unknown) => void>();
  const listeners = new Map<string, (params: unknown) => void>();
  socket.on("message", (data) => {
    const message = JSON.parse(data.toString()) as { id?: number; result?: unknown; method?: string; params?: unknown };
    if (message.id !== undefined) pending.get(message.id)?.(message.result);
    else if (message.method) listeners.get(message.method)?.(message.params);
  });
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve) => {
      const id = ++nextId;
      pending.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  return Object.assign(call, {
    close: () => socket.close(),
    onEvent: (method: string, listener: (params: unknown) => void) => listeners.set(method, listener),
  });
}

export async function startProfiler(inspectorUrl: string, samplingIntervalUs = 500): Promise<Profiler> {
  const call = await inspectorCalls(inspectorUrl);
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: samplingIntervalUs });
  await call("Profiler.start");
  return {
    async stop() {
      const { profile } = (await call("Profiler.stop")) as { profile: Profile };
      call.close();
      return profile;
    },
  };
}

/** Self time per function (name, file, line), most first, as table rows; the raw profile goes to `path`. */
export function profileSummary(profile: Profile, path: string, top = 25): string[][] {
  writeFileSync(path, JSON.stringify(profile));
  const byNode = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<string, number>();
  let totalUs = 0;
  profile.samples.forEach((nodeId, index) => {
    const frame = byNode.get(nodeId)?.callFrame;
    const delta = profile.timeDeltas[index] ?? 0;
    totalUs += delta;
    if (!frame) return;
    const file = frame.url.replace(/^.*\/(workers|durable-objects|node_modules)\//, "$1/");
    const key = `${frame.functionName || "(anonymous)"} ${file ? `${file}:${frame.lineNumber + 1}` : ""}`.trim();
    selfUs.set(key, (selfUs.get(key) ?? 0) + delta);
  });
  return [...selfUs]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => [name.slice(0, 110), (us / 1000).toFixed(0), `${((us / totalUs) * 100).toFixed(1)} %`]);
}

/**
 * A heap snapshot of the isolate (after a full collection: what is live, not garbage), summarised as self bytes and
 * objects by kind and constructor, per call (the whole snapshot goes to `path`, for DevTools). What a major GC has to
 * mark, so what its pause grows with.
 */
export async function heapSummary(inspectorUrl: string, calls: number, path: string, top = 30): Promise<string[][]> {
  const call = await inspectorCalls(inspectorUrl);
  const chunks: string[] = [];
  call.onEvent("HeapProfiler.addHeapSnapshotChunk", (params) => chunks.push((params as { chunk: string }).chunk));
  await call("HeapProfiler.enable");
  await call("HeapProfiler.collectGarbage");
  await call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  call.close();
  const text = chunks.join("");
  writeFileSync(path, text);
  const snapshot = JSON.parse(text) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const types = snapshot.snapshot.meta.node_types[0];
  const nodes = snapshot.nodes;
  const byKind = new Map<string, { bytes: number; count: number }>();
  let total = 0;
  for (let at = 0; at < nodes.length; at += fields.length) {
    const type = types[nodes[at + typeAt] ?? 0] ?? "?";
    const size = nodes[at + sizeAt] ?? 0;
    // Objects by constructor; strings, code, arrays and the rest by kind alone (their names are their contents).
    const key =
      type === "object" || type === "native" || type === "closure" ? `${type} ${snapshot.strings[nodes[at + nameAt] ?? 0]}` : type;
    const entry = byKind.get(key) ?? { bytes: 0, count: 0 };
    entry.bytes += size;
    entry.count++;
    total += size;
    byKind.set(key, entry);
  }
  const rows = [...byKind]
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .slice(0, top)
    .map(([key, { bytes, count }]) => [
      key.slice(0, 80),
      (bytes / 1024).toFixed(0),
      (bytes / 1024 / calls).toFixed(1),
      (count / calls).toFixed(1),
    ]);
  return [["all", (total / 1024).toFixed(0), (total / 1024 / calls).toFixed(1), ""], ...rows];
}
