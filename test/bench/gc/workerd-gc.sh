#!/bin/bash
# workerd for `load.bench.ts --gc`: its structured log lines (JSON objects) pass through unchanged; everything else —
# V8's trace (--trace-gc-nvp), which miniflare would drop and which would break `wrangler d1 execute --json` when the
# bench seeds D1 — goes with the time each line arrived (epoch ms) to $WORKERD_GC_LOG. Line-buffered, so a GC line's
# time is its collection's end. workerd replaces this shell (exec), so stopping it stops workerd, not only the shell.
exec 9>&1
exec stdbuf -oL "$WORKERD_GC_BINARY" "$@" > >(
  while IFS= read -r line; do
    case "$line" in
      "{"*) printf '%s\n' "$line" >&9 ;;
      *) printf '%s %s\n' "$(date +%s%3N)" "$line" >> "$WORKERD_GC_LOG" ;;
    esac
  done
)
