#!/usr/bin/env bash
# Usage: deploy/secrets.sh [DIR]   (default: ./secrets)
#
# Writes the stack's secrets as files in DIR, each only if it is missing,
# so running it again never changes a password a database already uses:
#   jwt_secret              signs login tokens; every node shares it
#   mysql_password          the MySQL user "moim"
#   mysql_root_password     MySQL's root (set once, never printed to a log)
#   mysql_dsn               the nodes' DSN, with that password
#   grafana_admin_password  Grafana's "admin" login
#   vapid_private_key       the Web Push signing key (P-256, base64url), and
#   vapid_public_key        its public key: every node signs pushes with the
#                           one pair browsers subscribed to (needs openssl)
# docker-compose.yml reads them from ./secrets; for docker-swarm.yml load
# them with: for s in DIR/*; do docker secret create "moim_$(basename "$s")" "$s"; done
set -euo pipefail

dir=${1:-secrets}
# The directory keeps other host users out. The files themselves must be
# readable inside the containers, whose users are not root (compose mounts
# a file secret with its host mode; swarm secrets need no such care).
mkdir -p "$dir"
chmod 700 "$dir"
umask 022

random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

create() {
	local name=$1 value=$2
	if [ -s "$dir/$name" ]; then
		return
	fi
	printf '%s' "$value" >"$dir/$name"
	echo "created $dir/$name"
}

create jwt_secret "$(random_hex 32)"
create mysql_password "$(random_hex 16)"
create mysql_root_password "$(random_hex 16)"
create mysql_dsn "moim:$(cat "$dir/mysql_password")@tcp(mysql:3306)/moim"
create grafana_admin_password "$(random_hex 12)"

base64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

# The VAPID pair is made together or not at all: a public key without its
# private key (or another's) would make every push fail to verify.
if [ ! -s "$dir/vapid_private_key" ] || [ ! -s "$dir/vapid_public_key" ]; then
	if [ -s "$dir/vapid_private_key" ] || [ -s "$dir/vapid_public_key" ]; then
		echo "$dir has one of vapid_private_key and vapid_public_key: remove it to make a new pair (browsers then subscribe again)" >&2
		exit 1
	fi
	command -v openssl >/dev/null || { echo "openssl is needed to make the VAPID key pair" >&2; exit 1; }
	pem=$(openssl ecparam -name prime256v1 -genkey -noout)
	# SEC1 DER: the 32-byte private scalar starts at byte 8; the public
	# key's DER ends with the 65-byte uncompressed point.
	create vapid_private_key "$(printf '%s\n' "$pem" | openssl ec -outform DER 2>/dev/null | tail -c +8 | head -c 32 | base64url)"
	create vapid_public_key "$(printf '%s\n' "$pem" | openssl ec -pubout -outform DER 2>/dev/null | tail -c 65 | base64url)"
fi
