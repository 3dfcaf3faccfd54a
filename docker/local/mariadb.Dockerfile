# MariaDB from Debian's package, with an entrypoint that reads the same variables as the official
# mysql/mariadb images (MYSQL_ROOT_PASSWORD, MYSQL_DATABASE, MYSQL_USER, MYSQL_PASSWORD) and runs
# /docker-entrypoint-initdb.d/*.sql|*.sh once, when the data directory is new.
FROM tinyim-base:bookworm
RUN apt-get update -q \
 && apt-get install -y -q mariadb-server mariadb-client \
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql/* \
 && mkdir -p /run/mysqld /docker-entrypoint-initdb.d && chown mysql:mysql /run/mysqld /var/lib/mysql \
 && printf '[mariadbd]\nbind-address = 0.0.0.0\nskip-name-resolve\n' >/etc/mysql/mariadb.conf.d/90-docker.cnf
COPY mariadb-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/mysql
EXPOSE 3306
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD []
