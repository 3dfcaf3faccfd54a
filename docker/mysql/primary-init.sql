-- Runs once when the primary's data directory is created (docker-entrypoint-initdb.d).
-- The application user (created by MYSQL_USER) may read replication status; `repl` feeds the replica.
CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED WITH caching_sha2_password BY 'repl-password';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
GRANT REPLICATION CLIENT ON *.* TO 'tinyim'@'%';
FLUSH PRIVILEGES;
