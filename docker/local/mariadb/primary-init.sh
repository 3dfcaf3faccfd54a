# MariaDB's twin of docker/mysql/primary-init.sh, sourced once by docker/local/mariadb-entrypoint.sh.
# MariaDB always writes GTIDs; `repl` feeds the replica; the application user may read replica status.
docker_process_sql --database=mysql <<SQL
CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY '${MYSQL_REPLICATION_PASSWORD:?set DB_REPLICATION_PASSWORD in the env file}';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
GRANT BINLOG MONITOR, SLAVE MONITOR ON *.* TO '${MYSQL_USER}'@'%';
FLUSH PRIVILEGES;
SQL
