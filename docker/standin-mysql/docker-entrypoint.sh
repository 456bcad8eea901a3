#!/bin/bash
# Minimal re-implementation of the official mysql image's entrypoint contract (not its code).
set -euo pipefail

if [ "${1:0:1}" = '-' ]; then set -- mysqld "$@"; fi

if [ "$1" = mysqld ]; then
  datadir=/var/lib/mysql
  mkdir -p "$datadir" /run/mysqld
  chown mysql:mysql "$datadir" /run/mysqld
  if [ ! -d "$datadir/mysql" ]; then
    root_pw="${MYSQL_ROOT_PASSWORD:-}"
    allow_empty="${MYSQL_ALLOW_EMPTY_PASSWORD:-}"
    database="${MYSQL_DATABASE:-}"
    user="${MYSQL_USER:-}"
    password="${MYSQL_PASSWORD:-}"
    if [ -z "$root_pw" ] && [ -z "$allow_empty" ]; then
      echo 'error: database is uninitialized and password option is not specified' >&2
      echo '  You need to specify one of MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD' >&2
      exit 1
    fi
    # the init server's own log (it too says "ready for connections") stays out of the container
    # log, so readiness means the final server
    initlog=/tmp/mysql-init.log
    mysqld --initialize-insecure --user=mysql --datadir="$datadir" --log-error="$initlog" \
      || { cat "$initlog" >&2; exit 1; }
    sock=/run/mysqld/init.sock
    mysqld --user=mysql --datadir="$datadir" --skip-networking --socket="$sock" \
      --log-error="$initlog" &
    pid=$!
    for _ in $(seq 1 600); do
      mysql --protocol=socket --socket="$sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
      kill -0 "$pid" 2>/dev/null || { cat "$initlog" >&2; exit 1; }
      sleep 0.1
    done
    sqlq() { printf "%s" "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g"; }
    {
      echo "SET @@SESSION.SQL_LOG_BIN=0;"
      echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$(sqlq "$root_pw")';"
      echo "CREATE USER 'root'@'%' IDENTIFIED BY '$(sqlq "$root_pw")';"
      echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
      if [ -n "$database" ]; then echo "CREATE DATABASE IF NOT EXISTS \`$database\`;"; fi
      if [ -n "$user" ]; then
        echo "CREATE USER '$(sqlq "$user")'@'%' IDENTIFIED BY '$(sqlq "$password")';"
        if [ -n "$database" ]; then echo "GRANT ALL ON \`$database\`.* TO '$(sqlq "$user")'@'%';"; fi
      fi
    } | mysql --protocol=socket --socket="$sock" -uroot
    for f in /docker-entrypoint-initdb.d/*; do
      case "$f" in
        *.sh) echo "running $f"; . "$f" ;;
        *.sql) echo "running $f"; MYSQL_PWD="$root_pw" mysql --protocol=socket --socket="$sock" -uroot ${database:+"$database"} < "$f" ;;
        *) ;;
      esac
    done
    kill "$pid"; wait "$pid" || true
    echo 'MySQL init process done. Ready for start up.'
  fi
  exec "$@" --user=mysql
fi
exec "$@"
