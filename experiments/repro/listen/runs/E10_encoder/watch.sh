#!/usr/bin/env bash
# keep process group $1 running: resume it if something stopped it, log when
while kill -0 -"$1" 2>/dev/null; do
  if ps -o stat= -g "$1" | grep -q T; then echo "stopped at $(date -u +%T), resumed" >> ${WATCH_LOG:-/tmp/r18d/logs/watch.log}; kill -CONT -"$1"; fi
  sleep 3
done
