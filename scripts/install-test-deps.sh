#!/usr/bin/env bash
# System packages the tests need: a MySQL-compatible server (the store tests start a throwaway one)
# unless LOOKALIKE_TEST_MYSQL_URL names a running server or a Docker engine can start a container;
# Chromium for the browser tests (Playwright drives the system browser; it downloads none); nginx, the
# production set-up's reverse proxy, which the slow-sender test starts in front of gunicorn; and openssl,
# whose command makes the URL tests' TLS certificate.
set -euo pipefail

need=()
if [ -z "${LOOKALIKE_TEST_MYSQL_URL:-}" ] && ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ] \
   && ! command -v mysqld >/dev/null && [ ! -x /usr/sbin/mysqld ]; then
  need+=(mariadb-server)
fi
if [ -z "${LOOKALIKE_CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  need+=(chromium)
fi
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  need+=(nginx)
fi
if ! command -v openssl >/dev/null; then
  need+=(openssl)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "Please install: ${need[*]} (or set LOOKALIKE_TEST_MYSQL_URL to a running MySQL server)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${need[*]} with apt-get"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packages' own services are not needed: the tests start their own servers in temporary folders.
