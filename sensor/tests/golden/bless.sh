#!/usr/bin/env bash
# Writes the golden outputs of tests/golden/cases.tsv with the given surgewatch binary.
# Only for an intended change of the output contract: the goldens pin every replay's output.
#   sensor/tests/golden/bless.sh target/release/surgewatch
set -euo pipefail
bin=$(realpath "$1")
cd "$(dirname "$0")/../.."   # sensor/
out=tests/golden/out
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
while IFS=$'\t' read -r name args; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    if [[ "$args" == *'$S/'* && ! -d ../../shared/pcaps ]]; then
        echo "skip $name (no ../shared/pcaps)"; continue
    fi
    rm -f "$tmp/baselines"
    a=${args//\$BASELINES/$tmp/baselines}
    a=${a//\$B/../pcaps/captures}
    a=${a//\$S/../../shared/pcaps}
    a=${a//\$G/tests/golden}
    # shellcheck disable=SC2086
    set +e; "$bin" replay $a >"$out/$name.stdout" 2>/dev/null; rc=$?; set -e
    echo "$rc" >"$out/$name.rc"
    if [[ "$args" == *'$BASELINES'* ]]; then cp "$tmp/baselines" "$out/$name.baselines"; fi
done < tests/golden/cases.tsv
echo "wrote $(ls "$out" | wc -l) files to $out"
