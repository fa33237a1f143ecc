#!/usr/bin/env bash
# Install the Debian packages that the test suite uses, when they are missing:
# PostgreSQL (server binaries for the PostgreSQL source's tests) and openssl
# (certificates for the e2e control plane).
# As root with apt-get it installs them; otherwise it says what is missing and
# the tests that need it skip with a one-line reason.
set -euo pipefail

have_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v pg_ctl >/dev/null 2>&1
}

missing=()
have_postgres || missing+=(postgresql)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)

if [ ${#missing[@]} -eq 0 ]; then
    echo "system-deps: PostgreSQL server binaries and openssl present"
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "system-deps: missing ${missing[*]} (install with your package manager);" \
        "the tests that need them will skip" >&2
fi
