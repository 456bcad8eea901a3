#!/bin/sh
# `serve` (the default) and other emulator sub-commands run the CLI; anything else runs as given
# (e.g. `python3 /app/app.py` for the example app, which reuses this image's boto3/psycopg/PyMySQL).
#
# RDSIAM_WAIT_FOR="host:port host:port" (external backends): wait until each accepts TCP
# (RDSIAM_WAIT_TIMEOUT seconds, default 120) before serving — compose starts services together, and
# the official postgres/mariadb images open TCP only once their initialisation is done.
set -eu
if [ -n "${RDSIAM_WAIT_FOR:-}" ]; then
  python3 - "${RDSIAM_WAIT_TIMEOUT:-120}" $RDSIAM_WAIT_FOR <<'PY'
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[1])
for target in sys.argv[2:]:
    host, _, port = target.rpartition(":")
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            print(f"rdsiam-entrypoint: {target} accepts connections", flush=True)
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                sys.exit(f"rdsiam-entrypoint: {target} not reachable in time: {exc}")
            time.sleep(0.5)
PY
fi
case "${1:-serve}" in
  serve|token|policy|demo|-*) exec rdsiam-emulator "$@" ;;
  *) exec "$@" ;;
esac
