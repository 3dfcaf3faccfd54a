#!/bin/bash
# First start: create the system tables, set the root password, create MYSQL_DATABASE and MYSQL_USER,
# run the init scripts; then (and on every later start) exec mariadbd with the container's arguments.
# Init scripts (*.sh) are sourced and may call docker_process_sql, as with the official images.
set -euo pipefail
DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock

docker_process_sql() {
  mariadb --protocol=socket --socket="$SOCKET" -uroot ${MYSQL_ROOT_PASSWORD:+-p"$MYSQL_ROOT_PASSWORD"} "$@"
}

sql_escape() { printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g"; }

if [ ! -d "$DATADIR/mysql" ]; then
  : "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD must be set}"
  chown -R mysql:mysql "$DATADIR" /run/mysqld
  mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db \
    --auth-root-authentication-method=normal >/dev/null
  # the temporary server takes the container's arguments (server id, binlog) but no network
  mariadbd --user=mysql --datadir="$DATADIR" --socket="$SOCKET" --skip-networking "$@" &
  pid=$!
  for _ in $(seq 60); do
    mariadb-admin --socket="$SOCKET" -uroot ping >/dev/null 2>&1 && break
    sleep 0.5
  done
  root_pw=$(sql_escape "$MYSQL_ROOT_PASSWORD")
  # root is set up on each server by itself: not in the binary log, so a replica never replays it
  mariadb --socket="$SOCKET" -uroot <<SQL
SET @@SESSION.SQL_LOG_BIN = 0;
DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host NOT IN ('localhost'));
CREATE USER 'root'@'%' IDENTIFIED BY '$root_pw';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
ALTER USER 'root'@'localhost' IDENTIFIED BY '$root_pw';
FLUSH PRIVILEGES;
SQL
  # the application's database and user go through the binary log: a replica gets them from it
  if [ -n "${MYSQL_DATABASE:-}" ]; then
    docker_process_sql -e "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\` CHARACTER SET utf8mb4"
  fi
  if [ -n "${MYSQL_USER:-}" ]; then
    : "${MYSQL_PASSWORD:?MYSQL_PASSWORD must be set with MYSQL_USER}"
    docker_process_sql -e "CREATE USER '$MYSQL_USER'@'%' IDENTIFIED BY '$(sql_escape "$MYSQL_PASSWORD")'"
    if [ -n "${MYSQL_DATABASE:-}" ]; then
      docker_process_sql -e "GRANT ALL ON \`$MYSQL_DATABASE\`.* TO '$MYSQL_USER'@'%'"
    fi
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    # shellcheck disable=SC1090  # the init scripts are mounted at run time
    case "$f" in
      *.sh) echo "init: running $f"; source "$f" ;;
      *.sql) echo "init: running $f"; docker_process_sql <"$f" ;;
      *) ;;
    esac
  done
  mariadb-admin --socket="$SOCKET" -uroot -p"$MYSQL_ROOT_PASSWORD" shutdown
  wait "$pid" || true
  echo "init: done"
fi
exec mariadbd --user=mysql --datadir="$DATADIR" "$@"
