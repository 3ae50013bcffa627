#!/usr/bin/env bash
# The issue-12 §1 probes ("bounded state under hostile traffic"), run against one surgewatch
# binary, with a table of the figures:
#
#   (i)   prefix mode, `--monitor 2001:db8:7::/48`: random destinations in the /48 (a TCP SYN
#         to a new random address each packet, random spoofed sources and ports) at 1 Mpps,
#         2M and 4M packets, i.e. 2M and 4M distinct addresses → peak RSS, wall time,
#         monitored_ips_seen, tracked_ips;
#   (ii)  auto-monitor (no prefixes): 150k random destinations in 11.0.0.0/8 in the first
#         second, then a 50 kpps UDP flood to 203.0.113.7 for 10 s → incidents,
#         unmonitored_overflow_packets;
#   (iii) bytes per tracked address: prefix mode, 10k and 1M distinct addresses of the /48
#         over 10 s, workers 1 and 2: (peak RSS at 1M − peak RSS at 10k) / (tracked at 1M −
#         tracked at 10k); and the peak when the million arrive in a single tick (1M in 1 s).
#   (iv)  auto-monitor, a budget kept busy: the 100,000 addresses 100.64.0.0 + 0..100,000 (the
#         default auto_monitor_limit) each get one SYN a second for 11 s (100 kpps), and a
#         50 kpps UDP flood goes to 203.0.113.7 from second 1 → incidents, overflow.
#
# Every run is `surgewatch replay CAPTURE [--monitor …] --format json --no-progress
# --workers W` under `/usr/bin/time -v` (peak RSS = "Maximum resident set size", wall =
# "Elapsed"), the counts from the JSON summary (the last stdout line). Only command-line
# options and defaults are used, so the same command runs on binaries from before and after
# the tracked-address budget (fields a binary does not have print as "-").
#
# Captures are written by `surgewatch-hostile-pcap` (`bench/src/bin/hostile_pcap.rs`, the
# generator of `surgewatch_pcaps::hostile`, fixed seed) into $PROBE_DIR, once: a capture
# already there is reused (same seed, same bytes), so the script can be re-run, e.g. for
# another binary, without regenerating. Remove $PROBE_DIR when done (about 1 GB).
#
# Usage:  bench/probes.sh SURGEWATCH_BIN [LABEL]
# Environment (all optional):
#   GEN=target/release/surgewatch-hostile-pcap   the generator (built with cargo if missing)
#   PROBE_DIR=/tmp/surgewatch-probes             captures, outputs and results-LABEL.tsv
#   WORKERS=2                                    workers of probes (i) and (ii)
set -euo pipefail

BIN=${1:?usage: bench/probes.sh SURGEWATCH_BIN [LABEL]}
LABEL=${2:-$(basename "$(dirname "$(dirname "$(dirname "$(readlink -f "$BIN")")")")")}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GEN=${GEN:-$ROOT/target/release/surgewatch-hostile-pcap}
PROBE_DIR=${PROBE_DIR:-/tmp/surgewatch-probes}
WORKERS=${WORKERS:-2}
V6=2001:db8:7::/48

[ -x "$BIN" ] || { echo "probes.sh: $BIN is not an executable" >&2; exit 2; }
if [ ! -x "$GEN" ]; then
    (cd "$ROOT" && cargo build --release --locked -p surgewatch-bench --bin surgewatch-hostile-pcap)
fi
mkdir -p "$PROBE_DIR"

# capture NAME GENERATOR-ARGS...: writes $PROBE_DIR/NAME.pcap unless it is already there.
capture() {
    local name=$1
    shift
    local f=$PROBE_DIR/$name.pcap
    if [ ! -s "$f" ]; then
        "$GEN" --out "$f.part" --seed 12 "$@" >/dev/null
        mv "$f.part" "$f"
    fi
    echo "$f"
}

RESULTS=$PROBE_DIR/results-$LABEL.tsv
printf 'probe\tworkers\tpackets\twall_s\tpeak_rss_mib\tmonitored_ips_seen\ttracked_ips\tevicted_ips\toverflow_packets\tincidents_addr/net\n' >"$RESULTS"

# run PROBE WORKERS CAPTURE [REPLAY-ARGS...]: one replay, one row of $RESULTS.
run() {
    local probe=$1 workers=$2 pcap=$3
    shift 3
    local out=$PROBE_DIR/$LABEL-$probe-w$workers
    /usr/bin/time -v "$BIN" replay "$pcap" "$@" --format json --no-progress \
        --workers "$workers" >"$out.json" 2>"$out.err"
    local rss wall
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$out.err")
    # "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:01.23"
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; printf "%.2f", s }' "$out.err")
    tail -n 1 "$out.json" | jq -r --arg p "$probe" --arg w "$workers" --arg r "$rss" --arg t "$wall" \
        '[$p, $w, .packets, $t, $r, .monitored_ips_seen, (.tracked_ips // "-"),
          (.evicted_ips // "-"), .unmonitored_overflow_packets,
          ((.incidents // []) | "\(map(select(.scope != "network")) | length)/\(map(select(.scope == "network")) | length)")]
         | map(tostring) | join("\t")' >>"$RESULTS"
}

echo "probes.sh: $BIN ($LABEL), captures in $PROBE_DIR" >&2
c2m=$(capture v6-sweep-2m --sweep "$V6,0,2,1000000")
c4m=$(capture v6-sweep-4m --sweep "$V6,0,4,1000000")
cauto=$(capture auto-sweep-flood --sweep "11.0.0.0/8,0,1,150000" --flood "203.0.113.7,1,11,50000")
cbusy=$(capture auto-busy-flood --cycle "100.64.0.0+100000,0,11,100000" --flood "203.0.113.7,1,11,50000")
c10k=$(capture v6-10k --sweep "$V6,0,10,1000")
c1m=$(capture v6-1m --sweep "$V6,0,10,100000")
c1m1s=$(capture v6-1m-1s --sweep "$V6,0,1,1000000")

run i:v6-2M "$WORKERS" "$c2m" --monitor "$V6"
run i:v6-4M "$WORKERS" "$c4m" --monitor "$V6"
run ii:auto-sweep+flood "$WORKERS" "$cauto"
run iv:auto-busy+flood "$WORKERS" "$cbusy"
for w in 1 2; do
    run iii:v6-10k "$w" "$c10k" --monitor "$V6"
    run iii:v6-1M "$w" "$c1m" --monitor "$V6"
    run iii:v6-1M-in-1s "$w" "$c1m1s" --monitor "$V6"
done

column -t -s $'\t' "$RESULTS"
# Bytes per tracked address, from the (iii) rows.
awk -F'\t' '
    $1 == "iii:v6-10k" { rss0[$2] = $5; n0[$2] = ($7 == "-" ? $6 : $7) }
    $1 == "iii:v6-1M"  { rss1[$2] = $5; n1[$2] = ($7 == "-" ? $6 : $7) }
    END { for (w in rss1) if (n1[w] > n0[w])
        printf "bytes per tracked address, workers %s: %.0f  ((%s - %s) MiB / (%s - %s) addresses)\n",
            w, (rss1[w] - rss0[w]) * 1048576 / (n1[w] - n0[w]), rss1[w], rss0[w], n1[w], n0[w] }
' "$RESULTS"
echo "results: $RESULTS (remove $PROBE_DIR when done)" >&2
