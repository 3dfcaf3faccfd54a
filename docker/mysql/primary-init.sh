# Sourced once by the mysql image's entrypoint (docker-entrypoint-initdb.d) when the primary's data
# directory is created. `repl` feeds the replica, with the password from MYSQL_REPLICATION_PASSWORD (the
# env file); the application user may read replication status (replica lag metric).
docker_process_sql --database=mysql <<SQL
CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED WITH caching_sha2_password BY '${MYSQL_REPLICATION_PASSWORD:?set DB_REPLICATION_PASSWORD in the env file}';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
GRANT REPLICATION CLIENT ON *.* TO '${MYSQL_USER}'@'%';
FLUSH PRIVILEGES;
SQL
