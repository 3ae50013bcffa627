#!/usr/bin/env bash
# Seeds fuzz/corpus/frame_parser/ with the hand-built frames (seed-*) and with frames extracted
# from the classic pcap files in the workspace's pcaps/ and in ../shared/pcaps/ (pcap-*).
# Needs only the Rust toolchain. pcapng files are skipped.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
out="$here/corpus/frame_parser"
mkdir -p "$out"

inputs=()
[[ -d "$root/pcaps" ]] && inputs+=("$root/pcaps")
[[ -d "$root/../shared/pcaps" ]] && inputs+=("$(cd "$root/../shared/pcaps" && pwd)")

cd "$root"
cargo run --quiet --example extract_corpus -p surgewatch-pipeline -- \
    --out "$out" --seeds --max "${MAX_PER_PCAP:-64}" "${inputs[@]}"
echo "corpus: $(find "$out" -type f | wc -l) files in $out"

# Whole files for the reader and the baselines decoder (see README.md).
mkdir -p "$here/corpus/pcap_reader" "$here/corpus/baseline_decode"
for f in "$root"/pcaps/captures/*.pcap "$root"/pcaps/captures/*.pcapng; do
    [[ -f "$f" ]] || continue
    { printf '\x00'; cat "$f"; } > "$here/corpus/pcap_reader/seed-$(basename "$f")"
done
for f in "$root"/sensor/tests/golden/out/*.baselines; do
    [[ -f "$f" ]] || continue
    cp "$f" "$here/corpus/baseline_decode/seed-$(basename "$f")"
done
echo "corpus: $(find "$here/corpus/pcap_reader" -type f | wc -l) captures, $(find "$here/corpus/baseline_decode" -type f | wc -l) baselines files"
