#!/bin/bash
# Minimal re-implementation of the official mariadb/mysql images' entrypoint contract (not their code).
set -euo pipefail

if [ "${1:0:1}" = '-' ]; then set -- mariadbd "$@"; fi
case "$1" in mysqld) set -- mariadbd "${@:2}" ;; esac

if [ "$1" = mariadbd ]; then
  datadir=/var/lib/mysql
  mkdir -p "$datadir" /run/mysqld
  chown mysql:mysql "$datadir" /run/mysqld
  if [ ! -d "$datadir/mysql" ]; then
    root_pw="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
    allow_empty="${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
    database="${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}"
    user="${MARIADB_USER:-${MYSQL_USER:-}}"
    password="${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}"
    if [ -z "$root_pw" ] && [ -z "$allow_empty" ]; then
      echo 'error: database is uninitialized and password option is not specified' >&2
      echo '  You need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD' >&2
      exit 1
    fi
    mariadb-install-db --user=mysql --datadir="$datadir" --auth-root-authentication-method=normal \
      --skip-test-db --skip-name-resolve >/dev/null
    sock=/run/mysqld/init.sock
    mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket="$sock" &
    pid=$!
    for _ in $(seq 1 300); do
      mariadb-admin --socket="$sock" -uroot ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    sqlq() { printf "%s" "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g"; }
    {
      echo "SET @@SESSION.SQL_LOG_BIN=0;"
      # like the official image: no anonymous accounts, root only @localhost (+ @'%' below)
      echo "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');"
      echo "FLUSH PRIVILEGES;"
      echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$(sqlq "$root_pw")';"
      echo "CREATE USER 'root'@'%' IDENTIFIED BY '$(sqlq "$root_pw")';"
      echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
      if [ -n "$database" ]; then echo "CREATE DATABASE IF NOT EXISTS \`$database\`;"; fi
      if [ -n "$user" ]; then
        echo "CREATE USER '$(sqlq "$user")'@'%' IDENTIFIED BY '$(sqlq "$password")';"
        if [ -n "$database" ]; then echo "GRANT ALL ON \`$database\`.* TO '$(sqlq "$user")'@'%';"; fi
      fi
    } | mariadb --socket="$sock" -uroot
    for f in /docker-entrypoint-initdb.d/*; do
      case "$f" in
        *.sh) echo "running $f"; . "$f" ;;
        *.sql) echo "running $f"; MYSQL_PWD="$root_pw" mariadb --socket="$sock" -uroot ${database:+"$database"} < "$f" ;;
        *) ;;
      esac
    done
    kill "$pid"; wait "$pid" || true
    echo 'MariaDB init process done. Ready for start up.'
  fi
  exec "$@" --user=mysql
fi
exec "$@"
