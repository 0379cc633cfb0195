#!/usr/bin/env bash
# Only the public API leaves paywire's shared libraries: every dynamic symbol an
# installed lib*.so.0 defines is pw_... (an internal pw__... only when a public
# header declares it, as PW_ASSERT's pw__assert_fail), a generated
# well-known type (google__protobuf__..., google_protobuf_..._pw_file) in
# libpaywire_wkt, or the linker's _init/_fini.
#   symbols.sh PREFIX
set -euo pipefail
libs=$(find "$1" -name 'libpaywire*.so.0' | sort)
[[ -n $libs ]] || { echo "symbols: no libpaywire*.so.0 under $1" >&2; exit 1; }
bad=0
for lib in $libs; do
  allowed='^(pw_[a-z0-9_]+|_init|_fini)$'
  if [[ $(basename "$lib") == libpaywire_wkt.so.0 ]]; then
    allowed='^(pw_[a-z0-9_]+|google__protobuf__[a-z0-9_]+|google_protobuf_[a-z0-9_]+__pw_file|_init|_fini)$'
  fi
  # Sanitized builds add the sanitizer's own instrumentation symbols.
  extra=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -Ev "$allowed" |
          grep -Ev '^(__odr_asan[._]|___asan_|__asan_|__ubsan_|__sancov_)' || true)
  count=$(nm -D --defined-only "$lib" | grep -c ' [A-Za-z] ' || true)
  for sym in $(nm -D --defined-only "$lib" | awk '$3 ~ /^pw__/ {print $3}'); do
    grep -rqw "$sym" "$1/include/paywire" || extra+=$'\n'"$sym (internal, in no public header)"
  done
  extra=$(echo "$extra" | sed '/^$/d')
  if [[ -n $extra ]]; then
    echo "symbols: $(basename "$lib") exports what is not public API:" >&2
    echo "$extra" | head -n 20 | sed 's/^/  /' >&2
    bad=1
  else
    echo "symbols: $(basename "$lib"): $count symbols, all public API"
  fi
done
exit $bad
