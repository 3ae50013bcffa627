//! Attack-family classification of one target's inbound traffic, with a confidence.
//!
//! The input is an [`AttackProfile`]: per-class packet and byte counters of the traffic that
//! reached one target, plus counters of UDP packets from well-known reflector source ports
//! ([`REFLECTORS`]). It is filled per packet by [`AttackProfile::record`] and summed across
//! workers and ticks by [`AttackProfile::add`], so it depends only on the multiset of packets.
//!
//! ## Vectors
//!
//! [`classify`] first splits the packets into *vectors*, one per [`Family`] (except
//! [`Family::MultiVector`]); every packet lands in exactly one vector:
//!
//! | vector | packets |
//! |---|---|
//! | `syn_flood`, `synack_flood`, `ack_flood`, `rst_flood`, `tcp_flood` | the `syn`, `synack`, `ack`, `rst`, `tcp_other` classes |
//! | `icmp_flood` | the `icmp` class |
//! | `unknown` | the `other` class (GRE, ESP, SCTP...) |
//! | a reflector family (`dns_amplification`...; `udp_amplification` for the generic ports) | unfragmented UDP and UDP first fragments from that family's source ports, **plus** its share of the later fragments |
//! | `udp_flood` | unfragmented UDP from any other source port |
//! | `fragment_flood` | first fragments not from a reflector port, plus the later fragments not attributed to a reflector |
//!
//! Later fragments carry no ports. They are attributed to reflector families in proportion
//! to first fragments: a family with `f` of the `F` first fragments (of any protocol) gets
//! `⌊later × f / F⌋` later fragments (and the same share of their bytes). What is left,
//! including every later fragment when no first fragment was seen, is `fragment_flood`.
//! So a fragmented DNS response flood (first fragments from port 53, then later fragments)
//! is `dns_amplification`, and only fragments that cannot be tied to a reflector are
//! `fragment_flood`.
//!
//! ## Family
//!
//! Vectors are ranked by packets (descending, then [`Family`] order). When two or more
//! vectors each carry at least 20 % of the packets, the family is
//! [`Family::MultiVector`] and [`Classification::vectors`] lists those vectors. Otherwise the
//! family is the top vector, unless even that carries less than 20 % (nothing dominates):
//! then the family is [`Family::Unknown`]. In both cases `vectors == [family]`.
//! An empty profile gives `Unknown`, no vectors, confidence 0.
//!
//! ## Confidence
//!
//! `confidence = round(D × S × N)`, in percent, all integer arithmetic:
//! - **D, dominance**: the share of packets explained by the verdict: the top vector's share,
//!   or for `multi_vector` the sum of the listed vectors' shares (per mille).
//! - **S, signature strength** (percent): how typical the vector's mean frame size is for
//!   its family ([`signature_strength`]). Amplification is recognised by large responses
//!   (DNS ≥ 300 B, NTP monlist ≥ 400 B, memcached and CLDAP ≥ 1000 B...), TCP flag floods
//!   by minimum-size segments (≤ 100 B); families without a size signature (UDP, ICMP,
//!   fragment floods) get 90. For `multi_vector` S is the packet-weighted mean over the
//!   listed vectors.
//! - **N, sample size** (percent): 100 from 10,000 packets, 90 from 1,000, 70 from 100, 40
//!   from 10, 20 below.
//!
//! `Unknown` is capped at 30: a verdict that explains nothing is never confident.

use surgewatch_pipeline::{proto, Fragment, PacketSummary, TrafficClass};

use surgewatch_per_ip::reflector::{reflector_index, AmpBucket, N_REFLECTORS, REFLECTORS};

/// An attack family: what a mitigation engineer calls the attack.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// TCP SYN without ACK.
    SynFlood,
    /// TCP SYN-ACK (reflected SYN-ACKs or spoofed).
    SynackFlood,
    /// TCP ACK without SYN/RST/FIN.
    AckFlood,
    /// TCP RST.
    RstFlood,
    /// Other TCP: FIN, null, xmas, flag soup, truncated headers.
    TcpFlood,
    /// UDP not from a reflector source port.
    UdpFlood,
    /// ICMP / ICMPv6.
    IcmpFlood,
    /// IP fragments not attributable to a reflector.
    FragmentFlood,
    /// DNS responses (source port 53).
    DnsAmplification,
    /// NTP responses, typically monlist (source port 123).
    NtpAmplification,
    /// memcached responses (source port 11211).
    MemcachedAmplification,
    /// SSDP responses (source port 1900).
    SsdpAmplification,
    /// CLDAP responses (source port 389).
    CldapAmplification,
    /// SNMP responses (source port 161).
    SnmpAmplification,
    /// Chargen responses (source port 19).
    ChargenAmplification,
    /// Responses from another well-known reflector port (see [`REFLECTORS`]).
    UdpAmplification,
    /// Two or more vectors of at least 20 % each.
    MultiVector,
    /// Other IP protocols, or nothing dominates.
    Unknown,
}

impl Family {
    /// Number of families.
    pub const COUNT: usize = 18;

    /// Every family, in declaration (and `Ord`) order.
    pub const ALL: [Family; Self::COUNT] = [
        Family::SynFlood,
        Family::SynackFlood,
        Family::AckFlood,
        Family::RstFlood,
        Family::TcpFlood,
        Family::UdpFlood,
        Family::IcmpFlood,
        Family::FragmentFlood,
        Family::DnsAmplification,
        Family::NtpAmplification,
        Family::MemcachedAmplification,
        Family::SsdpAmplification,
        Family::CldapAmplification,
        Family::SnmpAmplification,
        Family::ChargenAmplification,
        Family::UdpAmplification,
        Family::MultiVector,
        Family::Unknown,
    ];

    /// Dense index, `0..COUNT`.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The family of an amplification bucket's responses.
pub const fn family_of(bucket: AmpBucket) -> Family {
    match bucket {
        AmpBucket::Dns => Family::DnsAmplification,
        AmpBucket::Ntp => Family::NtpAmplification,
        AmpBucket::Memcached => Family::MemcachedAmplification,
        AmpBucket::Ssdp => Family::SsdpAmplification,
        AmpBucket::Cldap => Family::CldapAmplification,
        AmpBucket::Snmp => Family::SnmpAmplification,
        AmpBucket::Chargen => Family::ChargenAmplification,
        AmpBucket::Other => Family::UdpAmplification,
    }
}

/// Inbound traffic of one target over one or more ticks: the input of [`classify`].
///
/// Every counter is a plain sum, so [`AttackProfile::add`] is commutative and associative.
/// Bytes are frame lengths on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttackProfile {
    /// Packets per [`TrafficClass`] (`classes[class.index()]`).
    pub classes: [u64; TrafficClass::COUNT],
    /// Bytes per [`TrafficClass`].
    pub class_bytes: [u64; TrafficClass::COUNT],
    /// First fragments of any protocol (a subset of the `fragment` class).
    pub first_fragments: u64,
    /// Bytes of [`Self::first_fragments`].
    pub first_fragment_bytes: u64,
    /// UDP packets, unfragmented or first fragments, whose source port is reflector `i`.
    pub reflector_packets: [u64; N_REFLECTORS],
    /// Bytes of [`Self::reflector_packets`].
    pub reflector_bytes: [u64; N_REFLECTORS],
    /// The first fragments among [`Self::reflector_packets`].
    pub reflector_first_fragments: [u64; N_REFLECTORS],
    /// Bytes of [`Self::reflector_first_fragments`].
    pub reflector_first_fragment_bytes: [u64; N_REFLECTORS],
}

impl Default for AttackProfile {
    fn default() -> Self {
        AttackProfile {
            classes: [0; TrafficClass::COUNT],
            class_bytes: [0; TrafficClass::COUNT],
            first_fragments: 0,
            first_fragment_bytes: 0,
            reflector_packets: [0; N_REFLECTORS],
            reflector_bytes: [0; N_REFLECTORS],
            reflector_first_fragments: [0; N_REFLECTORS],
            reflector_first_fragment_bytes: [0; N_REFLECTORS],
        }
    }
}

fn add_all(a: &mut [u64], b: &[u64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.saturating_add(*y);
    }
}

impl AttackProfile {
    /// Accounts one inbound packet. Packets without an IP layer are ignored.
    #[inline]
    pub fn record(&mut self, s: &PacketSummary) {
        if !s.has_ip() {
            return;
        }
        let len = u64::from(s.wire_len);
        let c = TrafficClass::of(s).index();
        if let (Some(p), Some(b)) = (self.classes.get_mut(c), self.class_bytes.get_mut(c)) {
            *p += 1;
            *b += len;
        }
        let first = s.frag == Fragment::First;
        if first {
            self.first_fragments += 1;
            self.first_fragment_bytes += len;
        }
        if s.protocol != proto::UDP || !s.has_l4 || s.frag == Fragment::Later {
            return;
        }
        let Some(i) = reflector_index(s.src_port) else {
            return;
        };
        let i = usize::from(i);
        if let (Some(p), Some(b)) = (
            self.reflector_packets.get_mut(i),
            self.reflector_bytes.get_mut(i),
        ) {
            *p += 1;
            *b += len;
        }
        if first {
            if let (Some(p), Some(b)) = (
                self.reflector_first_fragments.get_mut(i),
                self.reflector_first_fragment_bytes.get_mut(i),
            ) {
                *p += 1;
                *b += len;
            }
        }
    }

    /// Adds every counter of `o`.
    pub fn add(&mut self, o: &AttackProfile) {
        add_all(&mut self.classes, &o.classes);
        add_all(&mut self.class_bytes, &o.class_bytes);
        self.first_fragments = self.first_fragments.saturating_add(o.first_fragments);
        self.first_fragment_bytes = self
            .first_fragment_bytes
            .saturating_add(o.first_fragment_bytes);
        add_all(&mut self.reflector_packets, &o.reflector_packets);
        add_all(&mut self.reflector_bytes, &o.reflector_bytes);
        add_all(
            &mut self.reflector_first_fragments,
            &o.reflector_first_fragments,
        );
        add_all(
            &mut self.reflector_first_fragment_bytes,
            &o.reflector_first_fragment_bytes,
        );
    }

    /// Total packets (sum of the classes).
    pub fn packets(&self) -> u64 {
        self.classes.iter().fold(0u64, |a, &b| a.saturating_add(b))
    }

    /// Splits the packets into vectors (see the module doc): packets and bytes per family,
    /// indexed by [`Family::index`]; `MultiVector` stays zero.
    pub fn vectors(&self) -> [(u64, u64); Family::COUNT] {
        let mut v = [(0u64, 0u64); Family::COUNT];
        let class = |c: TrafficClass| {
            (
                self.classes.get(c.index()).copied().unwrap_or(0),
                self.class_bytes.get(c.index()).copied().unwrap_or(0),
            )
        };
        let mut put = |f: Family, (p, b): (u64, u64)| {
            if let Some(slot) = v.get_mut(f.index()) {
                slot.0 = slot.0.saturating_add(p);
                slot.1 = slot.1.saturating_add(b);
            }
        };
        put(Family::SynFlood, class(TrafficClass::Syn));
        put(Family::SynackFlood, class(TrafficClass::SynAck));
        put(Family::AckFlood, class(TrafficClass::Ack));
        put(Family::RstFlood, class(TrafficClass::Rst));
        put(Family::TcpFlood, class(TrafficClass::TcpOther));
        put(Family::IcmpFlood, class(TrafficClass::Icmp));
        put(Family::Unknown, class(TrafficClass::Other));

        let (frag_p, frag_b) = class(TrafficClass::Fragment);
        let (udp_p, udp_b) = class(TrafficClass::Udp);
        // Later fragments: the fragment class minus every first fragment.
        let later_p = frag_p.saturating_sub(self.first_fragments);
        let later_b = frag_b.saturating_sub(self.first_fragment_bytes);
        let all_ff = u128::from(self.first_fragments);
        let (mut refl_unfrag_p, mut refl_unfrag_b) = (0u64, 0u64);
        let (mut refl_ff_p, mut refl_ff_b) = (0u64, 0u64);
        let (mut attributed_p, mut attributed_b) = (0u64, 0u64);
        for (i, refl) in REFLECTORS.iter().enumerate() {
            let p = self.reflector_packets.get(i).copied().unwrap_or(0);
            let b = self.reflector_bytes.get(i).copied().unwrap_or(0);
            let ff = self.reflector_first_fragments.get(i).copied().unwrap_or(0);
            let ffb = self
                .reflector_first_fragment_bytes
                .get(i)
                .copied()
                .unwrap_or(0);
            refl_unfrag_p = refl_unfrag_p.saturating_add(p.saturating_sub(ff));
            refl_unfrag_b = refl_unfrag_b.saturating_add(b.saturating_sub(ffb));
            refl_ff_p = refl_ff_p.saturating_add(ff);
            refl_ff_b = refl_ff_b.saturating_add(ffb);
            // ⌊later × ff / all_ff⌋, exact in u128, ≤ later because ff ≤ all_ff.
            let (lp, lb) = if all_ff == 0 {
                (0, 0)
            } else {
                let ff = u128::from(ff).min(all_ff);
                (
                    u64::try_from(u128::from(later_p) * ff / all_ff).unwrap_or(later_p),
                    u64::try_from(u128::from(later_b) * ff / all_ff).unwrap_or(later_b),
                )
            };
            attributed_p = attributed_p.saturating_add(lp);
            attributed_b = attributed_b.saturating_add(lb);
            put(
                family_of(refl.bucket),
                (p.saturating_add(lp), b.saturating_add(lb)),
            );
        }
        put(
            Family::UdpFlood,
            (
                udp_p.saturating_sub(refl_unfrag_p),
                udp_b.saturating_sub(refl_unfrag_b),
            ),
        );
        // Non-reflector first fragments plus unattributed later fragments.
        put(
            Family::FragmentFlood,
            (
                self.first_fragments
                    .saturating_sub(refl_ff_p)
                    .saturating_add(later_p.saturating_sub(attributed_p)),
                self.first_fragment_bytes
                    .saturating_sub(refl_ff_b)
                    .saturating_add(later_b.saturating_sub(attributed_b)),
            ),
        );
        v
    }
}

/// One vector's part of the traffic.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct VectorShare {
    /// The vector.
    pub family: Family,
    /// Its packets.
    pub packets: u64,
    /// Its bytes on the wire.
    pub bytes: u64,
    /// Its share of all packets, per mille (rounded down).
    pub share_permille: u16,
}

impl VectorShare {
    /// Mean frame size in bytes (0 without packets).
    pub fn mean_bytes(&self) -> u64 {
        self.bytes.checked_div(self.packets).unwrap_or(0)
    }
}

/// The verdict of [`classify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The attack family.
    pub family: Family,
    /// `[family]`, or for [`Family::MultiVector`] the vectors of at least 20 %, by share
    /// descending then [`Family`] order. Empty only for an empty profile.
    pub vectors: Vec<Family>,
    /// 0..=100 (see the module doc for the formula).
    pub confidence: u8,
    /// Every non-empty vector, by packets descending then [`Family`] order.
    pub shares: Vec<VectorShare>,
    /// Total packets.
    pub packets: u64,
}

/// Minimum share of packets, per mille, for a vector to count in a multi-vector verdict
/// and for a single vector to dominate.
pub const VECTOR_MIN_PERMILLE: u64 = 200;

/// Confidence cap of [`Family::Unknown`].
const UNKNOWN_CAP: u64 = 30;

/// How typical a mean frame size (bytes on the wire, Ethernet included) is for `family`,
/// in percent: the S factor of the confidence.
pub fn signature_strength(family: Family, mean_bytes: u64) -> u64 {
    // (at least this mean, strength) steps, first match wins; `small` floods test ≤.
    let at_least = |steps: &[(u64, u64)], floor: u64| {
        steps
            .iter()
            .find(|&&(min, _)| mean_bytes >= min)
            .map_or(floor, |&(_, s)| s)
    };
    let small = |limit: u64, yes: u64, no: u64| if mean_bytes <= limit { yes } else { no };
    match family {
        // 40-60 B SYNs plus options/VLAN/IPv6 stay under 100 B; SYNs with payload exist.
        Family::SynFlood => {
            if mean_bytes <= 100 {
                100
            } else if mean_bytes <= 200 {
                85
            } else {
                70
            }
        }
        Family::SynackFlood | Family::RstFlood => small(100, 100, 80),
        // Pure ACKs are also what legitimate downloads send back: never above 90.
        Family::AckFlood => small(100, 90, 75),
        Family::TcpFlood => 85,
        Family::UdpFlood | Family::IcmpFlood | Family::FragmentFlood => 90,
        // ANY/DNSSEC answers; small answers look like ordinary resolver replies.
        Family::DnsAmplification => at_least(&[(300, 100), (150, 80)], 60),
        // monlist: 468-byte payloads (≈510 B frames); mode 3/4 replies are ≈90 B.
        Family::NtpAmplification => at_least(&[(400, 100), (200, 80)], 60),
        // memcached and CLDAP responses are kilobytes, fragmented into ≈1500 B frames.
        Family::MemcachedAmplification | Family::CldapAmplification => {
            at_least(&[(1000, 100), (400, 85)], 65)
        }
        // M-SEARCH responses, 300-400 B.
        Family::SsdpAmplification => at_least(&[(250, 100)], 70),
        // GetBulk responses.
        Family::SnmpAmplification => at_least(&[(400, 100), (150, 80)], 65),
        // Random 0-512 character lines.
        Family::ChargenAmplification => at_least(&[(100, 100)], 70),
        // A mix of protocols: the port is the only signature.
        Family::UdpAmplification => at_least(&[(200, 95)], 70),
        Family::MultiVector | Family::Unknown => 50,
    }
}

/// The N factor of the confidence, in percent.
fn sample_strength(packets: u64) -> u64 {
    match packets {
        10_000.. => 100,
        1_000.. => 90,
        100.. => 70,
        10.. => 40,
        _ => 20,
    }
}

/// Classifies a profile (see the module doc for the rules).
pub fn classify(p: &AttackProfile) -> Classification {
    let v = p.vectors();
    let total: u64 = v.iter().fold(0u64, |a, &(pk, _)| a.saturating_add(pk));
    if total == 0 {
        return Classification {
            family: Family::Unknown,
            vectors: Vec::new(),
            confidence: 0,
            shares: Vec::new(),
            packets: 0,
        };
    }
    let permille = |packets: u64| -> u64 {
        u64::try_from(u128::from(packets) * 1000 / u128::from(total)).unwrap_or(1000)
    };
    let mut shares: Vec<VectorShare> = Family::ALL
        .iter()
        .zip(v)
        .filter(|&(_, (pk, _))| pk > 0)
        .map(|(&family, (packets, bytes))| VectorShare {
            family,
            packets,
            bytes,
            share_permille: u16::try_from(permille(packets)).unwrap_or(1000),
        })
        .collect();
    shares.sort_by(|a, b| b.packets.cmp(&a.packets).then(a.family.cmp(&b.family)));

    // ≥ 20 %, exactly: 1000 × packets ≥ 200 × total.
    let big = |s: &&VectorShare| {
        u128::from(s.packets) * 1000 >= u128::from(total) * u128::from(VECTOR_MIN_PERMILLE)
    };
    let significant: Vec<&VectorShare> = shares.iter().filter(big).collect();

    let (family, vectors, explained, strength) = if significant.len() >= 2 {
        let explained: u64 = significant.iter().map(|s| s.packets).sum();
        // Packet-weighted mean of the listed vectors' signature strengths.
        let weighted: u128 = significant
            .iter()
            .map(|s| {
                u128::from(s.packets) * u128::from(signature_strength(s.family, s.mean_bytes()))
            })
            .sum();
        let strength = u64::try_from(weighted / u128::from(explained.max(1))).unwrap_or(100);
        let vectors = significant.iter().map(|s| s.family).collect();
        (Family::MultiVector, vectors, explained, strength)
    } else if let Some(top) = significant.first() {
        let s = signature_strength(top.family, top.mean_bytes());
        (top.family, vec![top.family], top.packets, s)
    } else {
        // Nothing reaches 20 %.
        let top = shares.first().map_or(0, |s| s.packets);
        (
            Family::Unknown,
            vec![Family::Unknown],
            top,
            signature_strength(Family::Unknown, 0),
        )
    };

    let d = permille(explained);
    let n = sample_strength(total);
    let mut confidence = (d * strength * n + 50_000) / 100_000;
    if family == Family::Unknown {
        confidence = confidence.min(UNKNOWN_CAP);
    }
    Classification {
        family,
        vectors,
        confidence: u8::try_from(confidence.min(100)).unwrap_or(100),
        shares,
        packets: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn idx(port: u16) -> usize {
        usize::from(reflector_index(port).expect("reflector port"))
    }

    fn set(p: &mut AttackProfile, c: TrafficClass, packets: u64, mean: u64) {
        p.classes[c.index()] += packets;
        p.class_bytes[c.index()] += packets * mean;
    }

    /// Unfragmented reflector responses.
    fn reflected(p: &mut AttackProfile, port: u16, packets: u64, mean: u64) {
        set(p, TrafficClass::Udp, packets, mean);
        p.reflector_packets[idx(port)] += packets;
        p.reflector_bytes[idx(port)] += packets * mean;
    }

    fn profile(c: TrafficClass, packets: u64, mean: u64) -> AttackProfile {
        let mut p = AttackProfile::default();
        set(&mut p, c, packets, mean);
        p
    }

    #[test]
    fn families_index_densely() {
        // Their names are export's (`surgewatch_export::contract::family_name`).
        for (i, f) in Family::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
        }
    }

    #[test]
    fn reflector_index_covers_the_table() {
        assert!((20..=40).contains(&N_REFLECTORS));
        for (i, r) in REFLECTORS.iter().enumerate() {
            assert_eq!(reflector_index(r.port), Some(i as u8), "{}", r.name);
        }
        for w in REFLECTORS.windows(2) {
            assert!(w[0].port < w[1].port, "table sorted by port");
        }
        for port in [0, 1, 22, 80, 443, 1194, 8080, 65535] {
            assert_eq!(reflector_index(port), None, "{port}");
        }
        let hits = (0..=u16::MAX)
            .filter(|&p| reflector_index(p).is_some())
            .count();
        assert_eq!(hits, N_REFLECTORS);
        let named = [
            (53, Family::DnsAmplification),
            (123, Family::NtpAmplification),
            (11211, Family::MemcachedAmplification),
            (1900, Family::SsdpAmplification),
            (389, Family::CldapAmplification),
            (161, Family::SnmpAmplification),
            (19, Family::ChargenAmplification),
            (3702, Family::UdpAmplification),
        ];
        for (port, family) in named {
            assert_eq!(family_of(REFLECTORS[idx(port)].bucket), family);
        }
    }

    #[test]
    fn each_flood_family() {
        let cases = [
            (TrafficClass::Syn, 60, Family::SynFlood),
            (TrafficClass::SynAck, 60, Family::SynackFlood),
            (TrafficClass::Ack, 60, Family::AckFlood),
            (TrafficClass::Rst, 60, Family::RstFlood),
            (TrafficClass::TcpOther, 60, Family::TcpFlood),
            (TrafficClass::Udp, 512, Family::UdpFlood),
            (TrafficClass::Icmp, 98, Family::IcmpFlood),
            (TrafficClass::Fragment, 1500, Family::FragmentFlood),
            (TrafficClass::Other, 100, Family::Unknown),
        ];
        for (class, mean, family) in cases {
            let c = classify(&profile(class, 100_000, mean));
            assert_eq!(c.family, family, "{class:?}");
            assert_eq!(c.vectors, vec![family]);
            assert_eq!(c.packets, 100_000);
            if family == Family::Unknown {
                assert_eq!(c.confidence, 30);
            } else {
                assert!(c.confidence >= 85, "{class:?}: {}", c.confidence);
            }
        }
    }

    #[test]
    fn each_amplification_family() {
        let cases = [
            (53, 1200, Family::DnsAmplification),
            (123, 510, Family::NtpAmplification),
            (11211, 1400, Family::MemcachedAmplification),
            (1900, 350, Family::SsdpAmplification),
            (389, 1400, Family::CldapAmplification),
            (161, 900, Family::SnmpAmplification),
            (19, 300, Family::ChargenAmplification),
            (3702, 600, Family::UdpAmplification),
            (37810, 600, Family::UdpAmplification),
        ];
        for (port, mean, family) in cases {
            let mut p = AttackProfile::default();
            reflected(&mut p, port, 50_000, mean);
            let c = classify(&p);
            assert_eq!(c.family, family, "port {port}");
            assert!(c.confidence >= 95, "port {port}: {}", c.confidence);
        }
    }

    #[test]
    fn udp_not_from_reflector_is_udp_flood() {
        let mut p = profile(TrafficClass::Udp, 10_000, 100);
        reflected(&mut p, 53, 100, 120); // a little DNS noise
        let c = classify(&p);
        assert_eq!(c.family, Family::UdpFlood);
        assert_eq!(c.shares[0].packets, 10_000);
        assert_eq!(c.shares[1].family, Family::DnsAmplification);
    }

    #[test]
    fn fragmented_dns_amplification() {
        // 10k DNS responses of 3 kB: first fragment 1514 B from port 53, one later 1514 B
        // and one later 100 B fragment each.
        let mut p = AttackProfile::default();
        set(&mut p, TrafficClass::Fragment, 30_000, 0);
        p.class_bytes[TrafficClass::Fragment.index()] = 10_000 * (1514 + 1514 + 100);
        p.first_fragments = 10_000;
        p.first_fragment_bytes = 10_000 * 1514;
        let i = idx(53);
        p.reflector_packets[i] = 10_000;
        p.reflector_bytes[i] = 10_000 * 1514;
        p.reflector_first_fragments[i] = 10_000;
        p.reflector_first_fragment_bytes[i] = 10_000 * 1514;
        let c = classify(&p);
        assert_eq!(c.family, Family::DnsAmplification);
        assert_eq!(c.shares.len(), 1);
        assert_eq!(c.shares[0].packets, 30_000);
        assert_eq!(c.shares[0].mean_bytes(), 1042);
        assert_eq!(c.confidence, 100);
    }

    #[test]
    fn later_fragments_split_by_first_fragments() {
        // First fragments: 600 DNS, 200 NTP, 200 from other UDP ports; 1000 later fragments.
        let mut p = AttackProfile::default();
        set(&mut p, TrafficClass::Fragment, 2000, 1000);
        p.first_fragments = 1000;
        p.first_fragment_bytes = 1000 * 1000;
        for (port, n) in [(53u16, 600u64), (123, 200)] {
            p.reflector_packets[idx(port)] = n;
            p.reflector_bytes[idx(port)] = n * 1000;
            p.reflector_first_fragments[idx(port)] = n;
            p.reflector_first_fragment_bytes[idx(port)] = n * 1000;
        }
        let c = classify(&p);
        let get = |f: Family| c.shares.iter().find(|s| s.family == f).map(|s| s.packets);
        assert_eq!(get(Family::DnsAmplification), Some(1200));
        assert_eq!(get(Family::NtpAmplification), Some(400));
        assert_eq!(get(Family::FragmentFlood), Some(400));
        assert_eq!(c.family, Family::MultiVector);
        assert_eq!(
            c.vectors,
            // NTP and fragment_flood tie at 400: Family order.
            vec![
                Family::DnsAmplification,
                Family::FragmentFlood,
                Family::NtpAmplification
            ]
        );
    }

    #[test]
    fn pure_fragments_are_fragment_flood() {
        // Only later fragments (no first fragment seen at all).
        let c = classify(&profile(TrafficClass::Fragment, 50_000, 1480));
        assert_eq!(c.family, Family::FragmentFlood);
        // First fragments, none from a reflector port.
        let mut p = profile(TrafficClass::Fragment, 50_000, 1480);
        p.first_fragments = 25_000;
        p.first_fragment_bytes = 25_000 * 1480;
        let c = classify(&p);
        assert_eq!(c.family, Family::FragmentFlood);
        assert_eq!(c.shares.len(), 1);
        assert!(c.confidence >= 85);
    }

    #[test]
    fn multi_vector_with_three_vectors() {
        let mut p = profile(TrafficClass::Syn, 40_000, 60);
        reflected(&mut p, 53, 30_000, 1200);
        set(&mut p, TrafficClass::Icmp, 25_000, 98);
        set(&mut p, TrafficClass::Ack, 5_000, 60);
        let c = classify(&p);
        assert_eq!(c.family, Family::MultiVector);
        assert_eq!(
            c.vectors,
            vec![
                Family::SynFlood,
                Family::DnsAmplification,
                Family::IcmpFlood
            ]
        );
        assert_eq!(c.shares.len(), 4);
        // D = 950 ‰, S = (40×100 + 30×100 + 25×90) / 95 = 97, N = 100.
        assert_eq!(c.confidence, 92);
    }

    #[test]
    fn twenty_percent_boundary() {
        // 19 % second vector: single family.
        let mut p = profile(TrafficClass::Syn, 81_000, 60);
        set(&mut p, TrafficClass::Udp, 19_000, 200);
        let c = classify(&p);
        assert_eq!(c.family, Family::SynFlood);
        assert_eq!(c.vectors, vec![Family::SynFlood]);
        assert_eq!(c.confidence, 81);
        // 21 %: multi-vector.
        let mut p = profile(TrafficClass::Syn, 79_000, 60);
        set(&mut p, TrafficClass::Udp, 21_000, 200);
        let c = classify(&p);
        assert_eq!(c.family, Family::MultiVector);
        assert_eq!(c.vectors, vec![Family::SynFlood, Family::UdpFlood]);
        // Exactly 20 % counts.
        let mut p = profile(TrafficClass::Syn, 4, 60);
        set(&mut p, TrafficClass::Udp, 1, 200);
        assert_eq!(classify(&p).family, Family::MultiVector);
    }

    #[test]
    fn ties_rank_by_family_order() {
        let mut p = profile(TrafficClass::Icmp, 500, 98);
        set(&mut p, TrafficClass::Syn, 500, 60);
        let c = classify(&p);
        assert_eq!(c.vectors, vec![Family::SynFlood, Family::IcmpFlood]);
    }

    #[test]
    fn nothing_dominates_is_unknown() {
        let mut p = AttackProfile::default();
        for c in [
            TrafficClass::Syn,
            TrafficClass::Ack,
            TrafficClass::Rst,
            TrafficClass::Udp,
            TrafficClass::Icmp,
            TrafficClass::Other,
        ] {
            set(&mut p, c, 1000, 100);
        }
        let c = classify(&p);
        assert_eq!(c.family, Family::Unknown);
        assert_eq!(c.vectors, vec![Family::Unknown]);
        assert!(c.confidence <= 10, "{}", c.confidence);
        assert_eq!(c.shares.len(), 6);

        let empty = classify(&AttackProfile::default());
        assert_eq!(empty.family, Family::Unknown);
        assert!(empty.vectors.is_empty());
        assert_eq!(empty.confidence, 0);
    }

    #[test]
    fn confidence_ranges() {
        // Dominant with a typical signature and a large sample: high.
        let mut p = AttackProfile::default();
        reflected(&mut p, 53, 95_000, 1200);
        set(&mut p, TrafficClass::Syn, 5_000, 60);
        assert_eq!(classify(&p).confidence, 95);
        // Same share, small DNS answers: the signature is weak.
        let mut p = AttackProfile::default();
        reflected(&mut p, 53, 95_000, 90);
        set(&mut p, TrafficClass::Syn, 5_000, 60);
        let c = classify(&p);
        assert_eq!(c.family, Family::DnsAmplification);
        assert_eq!(c.confidence, 57);
        // NTP without monlist-sized responses.
        let mut p = AttackProfile::default();
        reflected(&mut p, 123, 10_000, 90);
        assert_eq!(classify(&p).confidence, 60);
        // Big SYNs are less typical.
        assert_eq!(
            classify(&profile(TrafficClass::Syn, 10_000, 1000)).confidence,
            70
        );
        // Tiny samples are never confident.
        assert_eq!(classify(&profile(TrafficClass::Syn, 5, 60)).confidence, 20);
        assert_eq!(classify(&profile(TrafficClass::Syn, 50, 60)).confidence, 40);
        assert_eq!(
            classify(&profile(TrafficClass::Syn, 500, 60)).confidence,
            70
        );
        assert_eq!(
            classify(&profile(TrafficClass::Syn, 5000, 60)).confidence,
            90
        );
        // 60 % dominant, the rest scattered below 20 %.
        let mut p = profile(TrafficClass::Syn, 60_000, 60);
        for c in [TrafficClass::Udp, TrafficClass::Icmp, TrafficClass::Ack] {
            set(&mut p, c, 13_333, 100);
        }
        let c = classify(&p);
        assert_eq!(c.family, Family::SynFlood);
        assert!((55..=62).contains(&c.confidence), "{}", c.confidence);
    }

    fn udp(src_port: u16, frag: Fragment, wire_len: u32) -> PacketSummary {
        let mut s = PacketSummary::empty(wire_len);
        s.ip_version = 4;
        s.src = IpAddr::from([198, 51, 100, 7]);
        s.dst = IpAddr::from([192, 0, 2, 1]);
        s.protocol = proto::UDP;
        s.ttl = 50;
        s.frag = frag;
        if frag != Fragment::Later {
            s.src_port = src_port;
            s.dst_port = 4444;
            s.has_l4 = true;
        }
        s
    }

    #[test]
    fn record_and_add() {
        let packets = [
            udp(53, Fragment::First, 1514),
            udp(0, Fragment::Later, 700),
            udp(53, Fragment::None, 400),
            udp(5000, Fragment::None, 100),
            udp(5000, Fragment::First, 1514),
        ];
        let mut whole = AttackProfile::default();
        let mut parts = [AttackProfile::default(), AttackProfile::default()];
        for (i, s) in packets.iter().enumerate() {
            whole.record(s);
            parts[i % 2].record(s);
        }
        whole.record(&PacketSummary::empty(60)); // no IP: ignored
        let mut merged = parts[1].clone();
        merged.add(&parts[0]);
        assert_eq!(merged, whole);
        let i = idx(53);
        assert_eq!(whole.reflector_packets[i], 2);
        assert_eq!(whole.reflector_bytes[i], 1914);
        assert_eq!(whole.reflector_first_fragments[i], 1);
        assert_eq!(whole.first_fragments, 2);
        assert_eq!(whole.classes[TrafficClass::Fragment.index()], 3);
        assert_eq!(whole.classes[TrafficClass::Udp.index()], 2);
        assert_eq!(whole.packets(), 5);
        let v = whole.vectors();
        // The later fragment: half to DNS (1 of 2 first fragments), ⌊0.5⌋ = 0 → fragment.
        assert_eq!(v[Family::DnsAmplification.index()], (2, 1914 + 350));
        assert_eq!(v[Family::UdpFlood.index()], (1, 100));
        assert_eq!(v[Family::FragmentFlood.index()], (2, 1514 + 700 - 350));
        assert_eq!(v.iter().map(|x| x.0).sum::<u64>(), 5);
    }
}
