#!/usr/bin/env bash
# `npm run test:alerts`: promtool checks the alert rules' syntax and runs their unit tests. promtool comes from
# Debian's `prometheus` package, which .ci/run installs; a developer without it is told loudly that the rules went
# unchecked, while in CI (CI=true) its absence fails, so the rules are never shipped unchecked.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool not found: alert rules NOT checked (apt-get install prometheus provides it)" >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
  exit 0
fi
promtool check rules alerts.yml
promtool test rules alerts.test.yml

# The dashboard's queries go through promtool's parser too, as recording rules (JSON is YAML): Grafana's
# variables become what they stand for (a rate window, a match-all regex).
queries="$(mktemp --suffix=.yml)"
trap 'rm -f "$queries"' EXIT
node -e '
  const dashboard = JSON.parse(require("node:fs").readFileSync("dashboard.json", "utf8"));
  const panels = (list) => list.flatMap((panel) => [panel, ...panels(panel.panels ?? [])]);
  const rules = panels(dashboard.panels).flatMap((panel) =>
    (panel.targets ?? []).map((target, i) => ({
      record: `dashboard:panel_${panel.id}_${i}`,
      expr: target.expr.replace(/\$__rate_interval/g, "5m").replace(/\$\{?\w+\}?/g, ".*"),
    })));
  console.log(JSON.stringify({ groups: [{ name: "dashboard", rules }] }));
' >"$queries"
echo "Checking dashboard.json queries"
promtool check rules "$queries" >/dev/null
echo "  SUCCESS: every dashboard query parses"
