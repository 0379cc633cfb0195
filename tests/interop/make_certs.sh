#!/usr/bin/env bash
# Makes a throwaway CA plus server and client certificates for TLS tests:
#   make_certs.sh DIR
# server.pem names foo.test.google.fr (the interop suite's --server_host_override),
# localhost and 127.0.0.1; client.pem carries a SPIFFE URI SAN for mTLS tests.
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
[ -f .done ] && exit 0
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
  -subj "/CN=paywire test CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
issue() { # name subject san
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" \
    -days 3650 -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue server "/CN=foo.test.google.fr" "DNS:foo.test.google.fr,DNS:localhost,IP:127.0.0.1"
issue client "/CN=interop-client/O=paywire" "URI:spiffe://paywire.test/interop-client,DNS:client.test"
# A certificate from another CA, to test that verification really happens.
openssl req -x509 -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.pem -days 3650 \
  -subj "/CN=foo.test.google.fr" -addext "subjectAltName=DNS:foo.test.google.fr" 2>/dev/null
touch .done
