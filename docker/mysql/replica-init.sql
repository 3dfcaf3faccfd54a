-- Runs once when the replica's data directory is created: follow the primary by GTID auto-position.
-- The primary's binlog carries its whole history (database, users, schema), so the replica creates
-- nothing of its own. The replica threads start again by themselves after the entrypoint's restart.
CHANGE REPLICATION SOURCE TO
  SOURCE_HOST = 'mysql-primary',
  SOURCE_PORT = 3306,
  SOURCE_USER = 'repl',
  SOURCE_PASSWORD = 'repl-password',
  SOURCE_AUTO_POSITION = 1,
  GET_SOURCE_PUBLIC_KEY = 1,
  SOURCE_CONNECT_RETRY = 5;
START REPLICA;
