#!/bin/bash
# Creates Extagram's two MySQL accounts on the first start of S7 (the mysql
# image runs /docker-entrypoint-initdb.d only while its data volume is
# empty). A .sh script, not a .sql file, because the passwords come from the
# container's environment (docker-compose.yml takes them from .env) and must
# never be written into the repository.
#
#   EXTAGRAM_DB_USER / EXTAGRAM_DB_PASSWORD
#       the services' account: SELECT, INSERT, UPDATE, DELETE on the
#       database and nothing else: no DDL, no GRANT, no FILE, no other schema.
#   EXTAGRAM_MIGRATE_USER / EXTAGRAM_MIGRATE_PASSWORD
#       the account of the one-shot `extagram migrate`: the data rights plus
#       the DDL that versioned migrations need (tables, indexes, foreign
#       keys), still only on this database.
#
# The entrypoint sources this file when it is not executable and runs it when
# it is; both work. It is idempotent, so it also rotates the passwords after
# .env changed and s7 was recreated:
#   docker compose exec s7 bash /docker-entrypoint-initdb.d/10-extagram-users.sh

# A subshell: when sourced, neither these options nor these variables leak
# into the entrypoint, and a failure still stops it (it runs with set -e).
(
	set -euo pipefail

	db="${MYSQL_DATABASE:?MYSQL_DATABASE must name the Extagram database}"
	app_user="${EXTAGRAM_DB_USER:-extagram_app}"
	app_password="${EXTAGRAM_DB_PASSWORD:?EXTAGRAM_DB_PASSWORD is required}"
	migrate_user="${EXTAGRAM_MIGRATE_USER:-extagram_migrate}"
	migrate_password="${EXTAGRAM_MIGRATE_PASSWORD:?EXTAGRAM_MIGRATE_PASSWORD is required}"

	# Names go into SQL as identifiers: allow only plain ones.
	for name in "$db" "$app_user" "$migrate_user"; do
		if [[ ! "$name" =~ ^[A-Za-z0-9_]{1,32}$ ]]; then
			echo >&2 "extagram initdb: '$name' is not a plain MySQL name ([A-Za-z0-9_], at most 32 characters)"
			exit 1
		fi
	done

	# A password inside an SQL string literal: escape \ and '.
	sql_string() {
		local s=${1//\\/\\\\}
		printf '%s' "${s//\'/\\\'}"
	}
	# A password inside a double-quoted option-file value: escape \ and ".
	option_string() {
		local s=${1//\\/\\\\}
		printf '%s' "${s//\"/\\\"}"
	}

	run_sql() {
		if declare -F docker_process_sql >/dev/null; then
			# Sourced by the entrypoint: its helper knows the socket and the
			# root password of the temporary server.
			docker_process_sql --database=mysql
		else
			# Run on its own: root over the local socket. The password goes
			# through a file descriptor, never on a command line.
			: "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is required}"
			mysql --defaults-extra-file=<(printf '[client]\npassword="%s"\n' "$(option_string "$MYSQL_ROOT_PASSWORD")") \
				--protocol=socket ${SOCKET:+--socket="$SOCKET"} -uroot --database=mysql
		fi
	}

	# In GRANT, _ in a database name is a wildcard: escape it.
	db_pattern=${db//_/\\_}

	run_sql <<SQL
CREATE USER IF NOT EXISTS '${app_user}'@'%' IDENTIFIED BY '$(sql_string "$app_password")';
ALTER USER '${app_user}'@'%' IDENTIFIED BY '$(sql_string "$app_password")';
GRANT SELECT, INSERT, UPDATE, DELETE ON \`${db_pattern}\`.* TO '${app_user}'@'%';

CREATE USER IF NOT EXISTS '${migrate_user}'@'%' IDENTIFIED BY '$(sql_string "$migrate_password")';
ALTER USER '${migrate_user}'@'%' IDENTIFIED BY '$(sql_string "$migrate_password")';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES ON \`${db_pattern}\`.* TO '${migrate_user}'@'%';
SQL

	echo "extagram initdb: '${app_user}' (data only) and '${migrate_user}' (schema) are ready on '${db}'"
)
