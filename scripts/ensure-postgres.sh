#!/usr/bin/env bash
# The PostgreSQL server on 127.0.0.1:5432 is part of these machines; start it if it stopped.
set -uo pipefail
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then exit 0; fi
echo "PostgreSQL is not answering on 127.0.0.1:5432; trying to start it"
if command -v pg_ctlcluster >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && exit 0; sleep 1; done
echo "PostgreSQL is still not reachable on 127.0.0.1:5432" >&2
exit 1
