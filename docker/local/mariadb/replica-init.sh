# MariaDB's twin of docker/mysql/replica-init.sh: follow the primary by GTID (slave_pos, from the start
# of its binlog: database, users and schema come from it). Replication starts again with the server.
docker_process_sql --database=mysql <<SQL
CHANGE MASTER TO
  MASTER_HOST = 'mysql-primary',
  MASTER_PORT = 3306,
  MASTER_USER = 'repl',
  MASTER_PASSWORD = '${MYSQL_REPLICATION_PASSWORD:?set DB_REPLICATION_PASSWORD in the env file}',
  MASTER_USE_GTID = slave_pos,
  MASTER_CONNECT_RETRY = 5;
START SLAVE;
SQL
