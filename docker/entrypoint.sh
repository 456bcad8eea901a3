#!/bin/sh
# `serve` (the default) and other emulator sub-commands run the CLI; anything else runs as given
# (e.g. `python3 /app/app.py` for the example app, which reuses this image's boto3/psycopg/PyMySQL).
set -eu
case "${1:-serve}" in
  serve|token|policy|demo|-*) exec rdsiam-emulator "$@" ;;
  *) exec "$@" ;;
esac
