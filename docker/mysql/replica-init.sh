# Sourced once by the mysql image's entrypoint when the replica's data directory is created: follow the
# primary by GTID auto-position. The primary's binlog carries its whole history (database, users,
# schema), so the replica creates nothing of its own. The replica threads start again by themselves
# after the entrypoint's restart.
docker_process_sql --database=mysql <<SQL
CHANGE REPLICATION SOURCE TO
  SOURCE_HOST = 'mysql-primary',
  SOURCE_PORT = 3306,
  SOURCE_USER = 'repl',
  SOURCE_PASSWORD = '${MYSQL_REPLICATION_PASSWORD:?set DB_REPLICATION_PASSWORD in the env file}',
  SOURCE_AUTO_POSITION = 1,
  GET_SOURCE_PUBLIC_KEY = 1,
  SOURCE_CONNECT_RETRY = 5;
START REPLICA;
SQL
