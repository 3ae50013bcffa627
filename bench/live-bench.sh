#!/usr/bin/env bash
# Live capture benchmark on a veth pair between two throw-away network namespaces:
# surgewatch AF_XDP (with and without busy polling), surgewatch AF_PACKET and
# `tcpdump -w /dev/null` receive the same traffic, one receiver at a time, with 1 and then 2
# queues; first as fast as the generator goes, then at fixed lower rates where the worker
# should keep up (zero kernel drops expected).
#
# Generators: at full speed `surgewatch-xdp-gen` (XDP live frames: BPF_PROG_TEST_RUN
# redirecting out of the veth, ~5.6 Mpps on one core here; one instance per queue, pinned to
# core i, since veth picks the peer's queue from the sending CPU); for the paced runs
# `surgewatch-xdp-tx` (AF_XDP TX, smooth pacing; live frames come in bursts that a 256-entry
# veth ring cannot absorb).
#
# Where the receive work runs (NAPI=..., see bench/README.md "Live capture"):
#   softirq   (default) the kernel's default for veth: the peer's NAPI runs in softirq on the
#             *sending* core, so each receiver's kernel work slows the generator and the rate
#             reached measures that kernel cost; the receiver's own core runs user space only.
#   threaded  threaded NAPI pinned to the receiver's core, as a NIC whose interrupts go to the
#             capture core: kernel and user-space work of the receiver share its one core.
# GRO is turned on on the receiving veth in both cases: without an XDP program that is what
# gives it a NAPI context, without which veth drops redirected XDP frames.
#
# Usage (root):  bench/live-bench.sh
# Environment (all optional):
#   DURATION=10        seconds of traffic per run
#   LOW_RATES="300000 600000"  paced runs (total pps over all queues), checked for zero drops
#   QUEUES="1 2"       queue counts to test
#   RECEIVERS="af_xdp af_xdp_busy af_packet tcpdump"
#   NAPI=softirq       or threaded (see above)
#   BUSY_POLL=50us     busy-poll time of the af_xdp_busy receiver
#   BUSY_FRAMES=4096   its UMEM frames per queue (`capture.xdp_frames`; a worker that always
#                      keeps up needs little buffer, and a small UMEM keeps the copies warm)
#   REPEAT=1           runs per (receiver, queues, rate)
#   PACKETS=1000000 IPS=100000  the generated capture the paced frames come from; IPS is also
#                      the live-frames generator's destination count
#   TEMPLATES=65536    frames of it loaded into the AF_XDP TX generator's UMEM and cycled
#   CHUNK=4000000      frames per BPF_PROG_TEST_RUN of the live-frames generator (each run sets
#                      up a page pool, ~20 ms: small chunks leave the generator's core idle)
#   OUT=DIR            where results go (default: a new /tmp/sw-live-bench.XXXXXX)
#   NO_BUILD=1         use the binaries already in target/release
#
# Traffic never leaves the veth pair: both ends live in namespaces created here (nothing appears
# in the root namespace) and are deleted on exit, also on error or Ctrl-C.
set -euo pipefail

DURATION=${DURATION:-10}
LOW_RATES=${LOW_RATES-"300000 600000"}
QUEUES=${QUEUES:-"1 2"}
RECEIVERS=${RECEIVERS:-"af_xdp af_xdp_busy af_packet tcpdump"}
NAPI=${NAPI:-softirq}
BUSY_POLL=${BUSY_POLL:-50us}
BUSY_FRAMES=${BUSY_FRAMES:-4096}
case $NAPI in softirq | threaded) ;; *) echo "NAPI must be softirq or threaded" >&2; exit 2 ;; esac
REPEAT=${REPEAT:-1}
PACKETS=${PACKETS:-1000000}
IPS=${IPS:-100000}
TEMPLATES=${TEMPLATES:-65536}
CHUNK=${CHUNK:-4000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/sw-live-bench.XXXXXX)}
mkdir -p "$OUT"
NS_GEN="sw-bench-gen-$$"
NS_RX="sw-bench-rx-$$"
IF_GEN=swb0
IF_RX=swb1
NCPU=$(nproc)

log() { printf '%s live-bench: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, AF_XDP, raw sockets)"
for t in ip taskset; do command -v "$t" >/dev/null || die "$t is required (iproute2, util-linux)"; done

# --- tools: tcpdump and jq, installed when missing -------------------------------------------
need_pkgs=()
command -v tcpdump >/dev/null || need_pkgs+=(tcpdump)
command -v jq >/dev/null || need_pkgs+=(jq)
command -v ethtool >/dev/null || need_pkgs+=(ethtool)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing ${need_pkgs[*]} and no apt-get to install them"
    log "installing ${need_pkgs[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >"$OUT/apt.log" 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update >>"$OUT/apt.log" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >>"$OUT/apt.log" 2>&1 \
            || die "apt-get install ${need_pkgs[*]} failed (see $OUT/apt.log)"
    fi
fi
TCPDUMP=$(command -v tcpdump)

# --- binaries (copied, so that concurrent builds cannot swap them mid-run) -------------------
BIN="$OUT/bin"
mkdir -p "$BIN"
if [ -z "${NO_BUILD:-}" ]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -q -p surgewatch-sensor -p surgewatch-pcaps \
        -p surgewatch-bench --bin surgewatch --bin surgewatch-pcaps --bin surgewatch-xdp-tx \
        --bin surgewatch-xdp-gen)
fi
for b in surgewatch surgewatch-pcaps surgewatch-xdp-tx surgewatch-xdp-gen; do
    cp "$ROOT/target/release/$b" "$BIN/$b"
done
PCAP="$OUT/big.pcap"
if [ ! -s "$PCAP" ]; then
    "$BIN/surgewatch-pcaps" big --packets "$PACKETS" --ips "$IPS" "$PCAP" >"$OUT/pcap.log"
fi

# --- namespaces -------------------------------------------------------------------------------
RX_PID=
cleanup() {
    if [ -n "$RX_PID" ]; then kill "$RX_PID" 2>/dev/null || true; wait "$RX_PID" 2>/dev/null || true; fi
    ip netns del "$NS_GEN" 2>/dev/null || true
    ip netns del "$NS_RX" 2>/dev/null || true
    rm -f "$PCAP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

setup_pair() { # QUEUES
    local q=$1
    ip netns del "$NS_GEN" 2>/dev/null || true
    ip netns del "$NS_RX" 2>/dev/null || true
    ip netns add "$NS_GEN"
    ip netns add "$NS_RX"
    for ns in "$NS_GEN" "$NS_RX"; do
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    done
    # Created inside the generator's namespace with its peer in the receiver's: never on the host.
    ip -n "$NS_GEN" link add "$IF_GEN" mtu 1500 numtxqueues "$q" numrxqueues "$q" type veth \
        peer name "$IF_RX" mtu 1500 numtxqueues "$q" numrxqueues "$q" netns "$NS_RX"
    ip -n "$NS_GEN" link set "$IF_GEN" up
    ip -n "$NS_RX" link set "$IF_RX" up
    # A NAPI context on the receiving side (see the header), and TSO off on the sending side
    # so that veth also hands the AF_XDP TX generator's frames to that NAPI context.
    ip netns exec "$NS_RX" ethtool -K "$IF_RX" gro on >/dev/null
    ip netns exec "$NS_GEN" ethtool -K "$IF_GEN" tso off gso off >/dev/null
    if [ "$NAPI" = threaded ]; then
        ip netns exec "$NS_RX" sh -c "echo 1 > /sys/class/net/$IF_RX/threaded"
    fi
    # For busy polling (the kernel's recommended companions; harmless otherwise).
    ip netns exec "$NS_RX" sh -c "echo 2 > /sys/class/net/$IF_RX/napi_defer_hard_irqs; echo 200000 > /sys/class/net/$IF_RX/gro_flush_timeout"
}

# Threaded NAPI: pin the receiving veth's NAPI threads, queue i to the core of worker i.
pin_napi() { # QUEUES
    [ "$NAPI" = threaded ] || return 0
    local cores i=0 pid
    IFS=, read -r -a cores <<<"$(rx_cores "$1")"
    for pid in $(pgrep -f "^napi/$IF_RX-" | sort -n); do
        taskset -pc "${cores[$((i % ${#cores[@]}))]}" "$pid" >/dev/null
        i=$((i + 1))
    done
}

link_stats() { # NS IF -> "rx_packets rx_dropped tx_packets tx_dropped"
    ip -n "$1" -j -s link show "$2" |
        jq -r '.[0].stats64 | "\(.rx.packets) \(.rx.dropped) \(.tx.packets) \(.tx.dropped)"'
}

wait_for() { # FILE PATTERN SECONDS
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# CPU seconds (user + system) used so far by the threads of PID whose name matches REGEX.
cpu_secs() { # PID REGEX
    cat /proc/"$1"/task/*/stat 2>/dev/null | awk -v re="$2" -v hz="$(getconf CLK_TCK)" '{
        c = $0; sub(/^[^(]*\(/, "", c); comm = c; sub(/\).*$/, "", comm); sub(/^.*\) /, "", c)
        split(c, f, " "); if (comm ~ re) t += f[12] + f[13]
    } END {printf "%.2f", t / hz}'
}

# Seconds the threads of PID whose name matches REGEX spent runnable but waiting for a CPU
# (schedstat): a pinned worker that waits long cannot drain a small ring in time.
# Milliseconds of steal time (the hypervisor running something else on our vCPUs) per core so
# far, as "cpu0:N cpu1:M ...": a receiver whose vCPU is stolen for longer than its rings last
# drops frames whatever it does.
steal_ms() {
    awk -v hz="$(getconf CLK_TCK)" '/^cpu[0-9]/ {printf "%s%s:%d", sep, $1, $9 * 1000 / hz; sep = " "}' /proc/stat
}
steal_delta() { # BEFORE AFTER
    awk -v a="$1" -v b="$2" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= n; i++) { split(x[i], p, ":"); split(y[i], q, ":"); printf "%s%s:%d", sep, p[1], q[2] - p[2]; sep = " " }
    }'
}

run_wait() { # PID REGEX
    local t d c
    for t in /proc/"$1"/task/*; do
        read -r c <"$t/comm" 2>/dev/null || continue
        [[ $c =~ $2 ]] && read -r _ d _ <"$t/schedstat" && echo "$d"
    done | awk '{s += $1} END {printf "%.2f", s / 1e9}'
}

# Cores: the generator thread of queue i runs on core i; with one queue the receiver gets the
# other core. With two queues everything shares both cores (this VM has only two).
gen_cores() { if [ "$1" = 1 ]; then echo 0; else seq -s, 0 $(($1 - 1)); fi; }
rx_cores() { if [ "$1" = 1 ]; then echo $((NCPU > 1 ? 1 : 0)); else seq -s, 0 $(($1 - 1)); fi; }

# Full speed: one live-frames generator per queue, instance i pinned to core i (veth delivers to
# the peer's queue (sending CPU % queues)). Writes one JSON summary (total packets, the longest
# run time, Mpps) to FILE.
generate_max() { # QUEUES JSON_OUT ERR_OUT
    local q=$1 i pids=() files=()
    for ((i = 0; i < q; i++)); do
        ip netns exec "$NS_GEN" "$BIN/surgewatch-xdp-gen" -i "$IF_GEN" --ips "$IPS" --core "$i" \
            --duration "$DURATION" --chunk "$CHUNK" --json >"$2.$i" 2>>"$3" &
        pids+=($!)
        files+=("$2.$i")
    done
    for i in "${pids[@]}"; do wait "$i" || return 1; done
    jq -s '{generator: "surgewatch-xdp-gen", packets: (map(.packets) | add),
            secs: (map(.secs) | max), instances: length}
           | .mpps = .packets / .secs / 1e6' "${files[@]}" >"$2"
}

RESULTS="$OUT/results.tsv"
printf 'receiver\tqueues\trate_setting\trun\toffered_mpps\treceived\tsecs\trx_mpps\tper_worker_mpps\tsocket_drops\tlink_drops\tworkers\tper_queue\tworker_cpu_s\tprocess_cpu_s\tworker_runq_wait_s\tload1\tsteal_ms\n' >"$RESULTS"

run_one() { # RECEIVER QUEUES RATE(max|pps) RUN
    local rx=$1 q=$2 rate=$3 run=$4 tag="$1-q$2-$3-$4"
    local qlist gcores rcores rate_arg=() before_rx before_gen after_rx after_gen
    qlist=$(seq -s, 0 $((q - 1)))
    gcores=$(gen_cores "$q")
    rcores=$(rx_cores "$q")
    [ "$rate" = max ] || rate_arg=(--rate "$rate")
    before_rx=$(link_stats "$NS_RX" "$IF_RX")
    before_gen=$(link_stats "$NS_GEN" "$IF_GEN")
    local busy=()
    if [ "$rx" = af_xdp_busy ]; then
        printf '[capture]\nxdp_frames = %s\n' "$BUSY_FRAMES" >"$OUT/busy.toml"
        busy=(--busy-poll "$BUSY_POLL" --config "$OUT/busy.toml")
    fi
    case $rx in
    af_xdp | af_xdp_busy | af_packet)
        ip netns exec "$NS_RX" "$BIN/surgewatch" run -i "$IF_RX" --capture "${rx%_busy}" --format json \
            --status-interval 0s --monitor 10.0.0.0/8 \
            --cores "$rcores" "${busy[@]}" >"$OUT/$tag.json" 2>"$OUT/$tag.err" &
        RX_PID=$!
        wait_for "$OUT/$tag.err" "capturing" 10 || die "$tag: surgewatch did not start: $(cat "$OUT/$tag.err")"
        ;;
    tcpdump)
        ip netns exec "$NS_RX" taskset -c "$rcores" "$TCPDUMP" -i "$IF_RX" -w /dev/null \
            >"$OUT/$tag.out" 2>"$OUT/$tag.err" &
        RX_PID=$!
        wait_for "$OUT/$tag.err" "listening on" 10 || die "$tag: tcpdump did not start: $(cat "$OUT/$tag.err")"
        ;;
    esac
    # `ip netns exec` and `taskset` exec in place: RX_PID is the receiver itself.
    local wre='^surgewatch-q' cpu0_w cpu0_p cpu1_w cpu1_p wait0 wait1
    [ "$rx" = tcpdump ] && wre='^tcpdump'
    sleep 1
    cpu0_w=$(cpu_secs "$RX_PID" "$wre")
    cpu0_p=$(cpu_secs "$RX_PID" '.')
    wait0=$(run_wait "$RX_PID" "$wre")
    local steal0 steal
    steal0=$(steal_ms)
    pin_napi "$q"
    if [ "$rate" = max ]; then
        generate_max "$q" "$OUT/$tag.gen.json" "$OUT/$tag.gen.err" ||
            die "$tag: generator failed: $(cat "$OUT/$tag.gen.err")"
    else
        ip netns exec "$NS_GEN" "$BIN/surgewatch-xdp-tx" -i "$IF_GEN" --pcap "$PCAP" \
            --frames "$TEMPLATES" --queues "$qlist" --cores "$gcores" --duration "$DURATION" \
            "${rate_arg[@]}" --json >"$OUT/$tag.gen.json" 2>"$OUT/$tag.gen.err" ||
            die "$tag: generator failed: $(cat "$OUT/$tag.gen.err")"
    fi
    cpu1_w=$(cpu_secs "$RX_PID" "$wre")
    cpu1_p=$(cpu_secs "$RX_PID" '.')
    wait1=$(run_wait "$RX_PID" "$wre")
    steal=$(steal_delta "$steal0" "$(steal_ms)")
    sleep 1
    # Stopped like an operator would (surgewatch drains, flushes and prints its summary).
    kill -INT "$RX_PID"
    wait "$RX_PID" || die "$tag: receiver exited with an error: $(tail -3 "$OUT/$tag.err")"
    RX_PID=
    after_rx=$(link_stats "$NS_RX" "$IF_RX")
    after_gen=$(link_stats "$NS_GEN" "$IF_GEN")

    local secs offered received drops workers per_queue link_drops
    secs=$(jq -r .secs "$OUT/$tag.gen.json")
    offered=$(jq -r .mpps "$OUT/$tag.gen.json")
    # Frames lost on the veth itself (peer ring full), before any socket saw them.
    link_drops=$(echo "$before_rx $before_gen $after_rx $after_gen" |
        awk '{print ($10 - $2) + ($16 - $8)}')
    case $rx in
    af_xdp | af_xdp_busy | af_packet)
        local s="$OUT/$tag.summary.json"
        tail -n 1 "$OUT/$tag.json" >"$s"
        received=$(jq '[.queues[].received] | add' "$s")
        drops=$(jq '[.queues[] | .kernel_drops + .rx_ring_full] | add' "$s")
        workers=$(jq '.queues | length' "$s")
        per_queue=$(jq -r --argjson t "$secs" \
            '[.queues[] | "\(.name)@\(.core): \(.received / $t / 1e6 * 1000 | round / 1000) Mpps, drops \(.kernel_drops + .rx_ring_full)"] | join("; ")' "$s")
        ;;
    tcpdump)
        received=$(awk '/packets captured/ {print $1}' "$OUT/$tag.err")
        drops=$(awk '/packets dropped by kernel/ {print $1}' "$OUT/$tag.err")
        workers=1
        per_queue="tcpdump (1 thread)"
        ;;
    esac
    local mpps per_worker
    mpps=$(awk -v r="$received" -v s="$secs" 'BEGIN {printf "%.3f", r / s / 1e6}')
    per_worker=$(awk -v m="$mpps" -v w="$workers" 'BEGIN {printf "%.3f", m / w}')
    local wcpu pcpu rwait
    rwait=$(awk -v a="$wait0" -v b="$wait1" 'BEGIN {printf "%.3f", b - a}')
    wcpu=$(awk -v a="$cpu0_w" -v b="$cpu1_w" 'BEGIN {printf "%.2f", b - a}')
    pcpu=$(awk -v a="$cpu0_p" -v b="$cpu1_p" 'BEGIN {printf "%.2f", b - a}')
    printf '%s\t%s\t%s\t%s\t%.3f\t%s\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rx" "$q" "$rate" "$run" \
        "$offered" "$received" "$secs" "$mpps" "$per_worker" "$drops" "$link_drops" "$workers" \
        "$per_queue" "$wcpu" "$pcpu" "$rwait" "$(cut -d' ' -f1 /proc/loadavg)" "$steal" >>"$RESULTS"
    log "$tag: offered $offered Mpps, received $mpps Mpps ($per_worker per worker), socket drops $drops, veth drops $link_drops, worker CPU ${wcpu} s (waited ${rwait} s for a CPU), process CPU ${pcpu} s, steal ms $steal"
}

log "results in $OUT; ${DURATION} s per run; NAPI $NAPI; load average $(cut -d' ' -f1-3 /proc/loadavg)"
# The generator alone (nothing receives: veth refuses the frames at once): its own ceiling.
setup_pair 1
ip netns exec "$NS_RX" ethtool -K "$IF_RX" gro off >/dev/null # no NAPI context: refused at once
generate_max 1 "$OUT/gen-alone.json" "$OUT/gen-alone.err" || die "generator failed: $(cat "$OUT/gen-alone.err")"
GEN_ALONE=$(jq -r .mpps "$OUT/gen-alone.json")
log "generator alone (no receiver): $GEN_ALONE Mpps"
for q in $QUEUES; do
    setup_pair "$q"
    for run in $(seq 1 "$REPEAT"); do
        for rate in max $LOW_RATES; do
            for rx in $RECEIVERS; do
                run_one "$rx" "$q" "$rate" "$run"
            done
        done
    done
done
log "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"

# --- table ------------------------------------------------------------------------------------
{
    echo "NAPI: $NAPI; generator alone: $GEN_ALONE Mpps"
    echo
    echo "| receiver | queues | rate: offered Mpps | received Mpps | Mpps per worker | kernel drops | veth drops | worker CPU | worker waited for CPU | Mpps per worker CPU-second | ratio to tcpdump (rate / per CPU-s) | receive work on the sending core, ns/frame | steal time, ms |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    awk -F'\t' -v ga="$GEN_ALONE" -v napi="$NAPI" 'NR > 1 {
        key = $2 SUBSEP $3 SUBSEP $4
        if ($1 == "tcpdump") { td[key] = $8; tdc[key] = ($14 > 0) ? $6 / $14 : 0 }
        row[NR] = $0
    }
    END {
        for (i = 2; i <= NR; i++) {
            split(row[i], f, "\t")
            key = f[2] SUBSEP f[3] SUBSEP f[4]
            ratio = (td[key] > 0) ? sprintf("%.2f", f[8] / td[key]) : "-"
            eff = (f[14] > 0) ? f[6] / f[14] / 1e6 : 0
            ratio = ratio " / " ((tdc[key] > 0 && eff > 0) ? sprintf("%.2f", eff * 1e6 / tdc[key]) : "-")
            busy = sprintf("%.0f %%", 100 * f[14] / f[7] / f[12])
            rate = (f[3] == "max") ? "max" : sprintf("%.2f paced", f[3] / 1e6)
            # Softirq mode, full speed, one queue: the sending core also runs the receive path,
            # so its time per frame minus that of the generator alone is the receive path cost.
            cost = (napi == "softirq" && f[3] == "max" && f[2] == 1 && f[5] > 0 && ga > 0) ? sprintf("%.0f", 1000 / f[5] - 1000 / ga) : "-"
            printf "| %s | %s | %s: %s | %s | %s | %s | %s | %s | %s s | %s | %s | %s | %s |\n", f[1], f[2], rate, f[5], f[8], f[9], f[10], f[11], busy, f[16], (eff > 0) ? sprintf("%.2f", eff) : "-", ratio, cost, f[18]
        }
    }' "$RESULTS"
    # Each run's receivers faced the same generator within a minute: the ratio per run is
    # steadier than across runs (the VM's speed drifts), so the summary is per run.
    echo
    echo "Full speed, ratio to tcpdump of the same run (median, min-max over runs):"
    echo
    awk -F'\t' 'NR > 1 && $3 == "max" {
        key = $2 SUBSEP $4
        if ($1 == "tcpdump") td[key] = $8
        else { n++; rx[n] = $1; q[n] = $2; run[n] = $4; mpps[n] = $8 }
    }
    END {
        for (i = 1; i <= n; i++) {
            key = q[i] SUBSEP run[i]
            if (!(key in td) || td[key] <= 0) continue
            g = rx[i] " | " q[i]
            if (!(g in cnt)) order[++groups] = g
            r[g, ++cnt[g]] = mpps[i] / td[key]
        }
        print "| receiver | queues | runs | median ratio | min | max |"
        print "|---|---|---|---|---|---|"
        for (k = 1; k <= groups; k++) {
            g = order[k]; m = cnt[g]
            for (i = 1; i <= m; i++) v[i] = r[g, i]
            for (i = 2; i <= m; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
            med = (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
            printf "| %s | %d | %.2f | %.2f | %.2f |\n", g, m, med, v[1], v[m]
        }
    }' "$RESULTS"
} | tee "$OUT/table.md"
echo
echo "per queue:"
awk -F'\t' 'NR > 1 {printf "  %s q%s %s: %s\n", $1, $2, $3, $13}' "$RESULTS"
log "raw results: $RESULTS"
