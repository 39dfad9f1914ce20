import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";
import { SERIES } from "../../workers/shared/observability/series.ts";
import { labelsOf, problemsOf, readExpression } from "./support/promql.ts";

/**
 * The alert rules, runbooks and dashboard in `observability/` against the contract's series list
 * (workers/shared/observability/series.ts): every rule is complete and points at a runbook section that exists, and every
 * expression and panel query names only series and label keys `/metrics` exposes. promtool (`npm run test:alerts`)
 * checks the rules' syntax and behaviour; this checks what promtool cannot know.
 */
const DIR = join(import.meta.dirname, "../../observability");
const read = (file: string) => readFileSync(join(DIR, file), "utf8");

const AlertRule = z.strictObject({
  alert: z.string().regex(/^[A-Z][A-Za-z0-9]+$/),
  expr: z.string().min(1),
  for: z
    .string()
    .regex(/^\d+[smh]$/)
    .optional(),
  labels: z.strictObject({ severity: z.enum(["critical", "warning", "info"]) }),
  annotations: z.strictObject({ summary: z.string().min(10), description: z.string().min(10), runbook: z.string() }),
});
const RulesFile = z.strictObject({ groups: z.array(z.strictObject({ name: z.string(), rules: z.array(AlertRule).min(1) })).min(1) });

const UnitTests = z.object({
  rule_files: z.array(z.string()),
  tests: z.array(
    z.object({
      alert_rule_test: z.array(z.object({ alertname: z.string(), exp_alerts: z.array(z.unknown()) })),
    }),
  ),
});

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string; legendFormat?: string }[] | undefined;
  panels?: Panel[] | undefined;
}
const PanelSchema: z.ZodType<Panel> = z.lazy(() =>
  z.object({
    type: z.string(),
    title: z.string().min(1),
    targets: z.array(z.object({ expr: z.string().min(1), legendFormat: z.string().optional() })).optional(),
    panels: z.array(PanelSchema).optional(),
  }),
);
const Dashboard = z.object({
  schemaVersion: z.number().int().min(36),
  templating: z.object({ list: z.array(z.object({ name: z.string(), type: z.string(), query: z.unknown() })) }),
  panels: z.array(PanelSchema),
});

const rules = RulesFile.parse(parse(read("alerts.yml"))).groups.flatMap((group) => group.rules);
const dashboard = Dashboard.parse(JSON.parse(read("dashboard.json")));
const panels = (list: Panel[]): Panel[] => list.flatMap((panel) => [panel, ...panels(panel.panels ?? [])]);
const charts = panels(dashboard.panels).filter((panel) => panel.type !== "row");

/** GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens. */
function anchors(markdown: string): Set<string> {
  const headings = [...markdown.matchAll(/^#{1,6}\s+(.+)$/gm)].map((match) => match[1]!);
  return new Set(
    headings.map((heading) =>
      heading
        .toLowerCase()
        .replace(/[^a-z0-9 _-]/g, "")
        .replace(/ /g, "-"),
    ),
  );
}

/** Label names a template uses: `$labels.x` in annotations, `{{x}}` in legends. */
const templateLabels = (text: string, pattern: RegExp) => [...text.matchAll(pattern)].map((match) => match[1]!);

describe("alert rules", () => {
  it("are at least 40, uniquely named, each with a severity, a summary, a description and a runbook section that exists", () => {
    expect(rules.length).toBeGreaterThanOrEqual(40);
    const names = rules.map((rule) => rule.alert);
    expect(new Set(names).size).toBe(names.length);
    const sections = anchors(read("runbooks.md"));
    const missing = rules.filter((rule) => {
      const anchor = rule.annotations.runbook.match(/^runbooks\.md#([a-z0-9-]+)$/)?.[1];
      return !anchor || !sections.has(anchor);
    });
    expect(missing.map((rule) => `${rule.alert}: ${rule.annotations.runbook}`)).toEqual([]);
  });

  it("name only the contract's series and label keys, in expressions and templates", () => {
    const problems = rules.flatMap((rule) => {
      const text = `${rule.annotations.summary} ${rule.annotations.description}`;
      const labels = templateLabels(text, /\$labels\.(\w+)/g);
      return problemsOf(rule.expr, labels).map((problem) => `${rule.alert}: ${problem}`);
    });
    expect(problems).toEqual([]);
  });

  it("cover the faults an operator must hear about", () => {
    const used = new Set(rules.flatMap((rule) => readExpression(rule.expr).selectors.map((selector) => selector.name)));
    const required = [
      "circuit_breaker_state",
      "provider_health_state",
      "provider_switches_total",
      "ai_provider_latency_seconds_bucket",
      "media_frame_delay_seconds_bucket",
      "media_frames_dropped_total",
      "webhook_rejected_total",
      "webhook_requests_total",
      "calls_total",
      "up",
      "http_request_duration_seconds_bucket",
      "http_requests_total",
      "outbox_pending",
      "d1_query_duration_seconds_bucket",
      "cache_requests_total",
      "reminders_sent_total",
      "llm_tokens_total",
    ];
    expect(required.filter((name) => !used.has(name))).toEqual([]);
  });

  it("have promtool unit tests in which each key alert both fires and stays silent", () => {
    const suite = UnitTests.parse(parse(read("alerts.test.yml")));
    expect(suite.rule_files).toEqual(["alerts.yml"]);
    const cases = suite.tests.flatMap((test) => test.alert_rule_test);
    const key = [
      "ProviderBreakerOpen",
      "AILatencyP95High",
      "FrameDelayP99High",
      "WebhookRejectionSpike",
      "WebhooksStopped",
      "Http5xxRateHigh",
      "SwitchboardTargetMissing",
      "SwitchboardNoTraffic",
      "OutboxBacklogGrowing",
      "D1QueryLatencyP95High",
    ];
    const uncovered = key.filter((alert) => {
      const own = cases.filter((test) => test.alertname === alert);
      return !own.some((test) => test.exp_alerts.length > 0) || !own.some((test) => test.exp_alerts.length === 0);
    });
    expect(uncovered).toEqual([]);
    const names = new Set(rules.map((rule) => rule.alert));
    expect(cases.map((test) => test.alertname).filter((alert) => !names.has(alert))).toEqual([]);
  });
});

describe("dashboard", () => {
  it("takes its Prometheus data source from a variable", () => {
    expect(dashboard.templating.list).toContainEqual(
      expect.objectContaining({ name: "datasource", type: "datasource", query: "prometheus" }),
    );
  });

  it("queries only the contract's series and label keys, in every panel, legend and variable", () => {
    expect(charts.length).toBeGreaterThan(20);
    const problems = charts.flatMap((panel) => {
      if (!panel.targets?.length) return [`${panel.title}: no query`];
      return panel.targets.flatMap((target) =>
        problemsOf(target.expr, templateLabels(target.legendFormat ?? "", /\{\{\s*(\w+)\s*\}\}/g)).map((p) => `${panel.title}: ${p}`),
      );
    });
    for (const variable of dashboard.templating.list.filter((v) => v.type === "query")) {
      const query = JSON.stringify(variable.query);
      const [, series, label] = query.match(/label_values\((\w+),\s*(\w+)\)/) ?? [];
      if (!series || !label || !labelsOf(series)?.includes(label)) problems.push(`variable ${variable.name}: ${query}`);
    }
    expect(problems).toEqual([]);
  });

  it("charts every series of the contract", () => {
    const charted = new Set(
      charts.flatMap((panel) => (panel.targets ?? []).flatMap((t) => readExpression(t.expr).selectors)).map((s) => s.name),
    );
    const base = (name: string) => name.replace(/_(bucket|sum|count)$/, "");
    const missing = Object.keys(SERIES).filter((name) => !charted.has(name) && ![...charted].some((used) => base(used) === name));
    expect(missing).toEqual([]);
  });
});

describe("the expression check itself", () => {
  it("finds an unknown series, a foreign label and a grouping on a label the series lacks", () => {
    expect(problemsOf('sum by (tenant) (rate(http_requests_total{path="/x"}[5m])) / rate(made_up_total[5m]) > 1e6')).toEqual([
      "http_requests_total has no label path",
      "unknown series made_up_total",
      "no series of the expression has label tenant",
    ]);
    expect(problemsOf("histogram_quantile(0.95, sum by (le) (rate(d1_query_duration_seconds[5m])))")).toEqual([
      "unknown series d1_query_duration_seconds",
      "no series of the expression has label le",
    ]);
  });

  it("accepts histogram parts, Prometheus's up, offsets, subqueries and vector matching", () => {
    const expr =
      'sum by (carrier) (increase(webhook_requests_total{outcome="accepted"}[1h] offset 15m)) and on (carrier) ' +
      'sum by (le, op) (rate(d1_query_duration_seconds_bucket[5m:1m])) or absent(up{job="switchboard"}) ' +
      "or sum by (reason) (rate(media_frames_dropped_total[5m])) / ignoring (reason) group_left sum(rate(media_frames_total[5m]))";
    expect(problemsOf(expr, ["carrier", "op"])).toEqual([]);
  });
});

/** The series the contract fixes (its "Observability" list): anything else `/metrics` exposes must be documented. */
const CONTRACT_SERIES = [
  "app_info",
  "http_requests_total",
  "http_request_duration_seconds",
  "webhook_requests_total",
  "webhook_rejected_total",
  "calls_total",
  "call_sessions_active",
  "session_duration_seconds",
  "websocket_connections_active",
  "media_frames_total",
  "media_frames_dropped_total",
  "media_frame_delay_seconds",
  "ai_provider_requests_total",
  "ai_provider_latency_seconds",
  "ai_provider_errors_total",
  "ai_provider_active_sessions",
  "circuit_breaker_state",
  "provider_health_state",
  "provider_switches_total",
  "barge_in_total",
  "tool_calls_total",
  "llm_tokens_total",
  "d1_query_duration_seconds",
  "outbox_pending",
  "cache_requests_total",
  "reminders_sent_total",
  "log_entries_total",
];

describe("the series catalogue", () => {
  it("holds every series of the contract, and documents in the README's Observability section each one beyond it", () => {
    expect(Object.keys(SERIES)).toEqual(expect.arrayContaining(CONTRACT_SERIES));
    const readme = readFileSync(join(import.meta.dirname, "../../README.md"), "utf8");
    const observability = readme.slice(readme.indexOf("## Observability"), readme.indexOf("## Benchmarks"));
    const extras = Object.keys(SERIES).filter((name) => !CONTRACT_SERIES.includes(name));
    for (const name of extras) expect(observability, name).toContain(`\`${name}{`);
  });
});
