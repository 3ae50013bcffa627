//! The well-known UDP reflector services: which source ports carry amplified responses, and
//! the amplification bucket each is counted in ([`AmpCounters`](crate::AmpCounters)). A
//! protocol fact the accounting needs per packet; what family an incident of each bucket is
//! belongs to the detector.

/// An amplification counter bucket: one per reflector protocol with a family of its own, one
/// for every other reflector port. The discriminant is the index into
/// [`AmpCounters`](crate::AmpCounters) arrays.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AmpBucket {
    /// DNS (53).
    Dns = 0,
    /// NTP (123).
    Ntp = 1,
    /// memcached (11211).
    Memcached = 2,
    /// SSDP (1900).
    Ssdp = 3,
    /// CLDAP (389).
    Cldap = 4,
    /// SNMP (161).
    Snmp = 5,
    /// chargen (19).
    Chargen = 6,
    /// Every other port of [`REFLECTORS`].
    Other = 7,
}

/// Number of [`AmpBucket`]s.
pub const AMP_BUCKETS: usize = 8;

impl AmpBucket {
    /// Every bucket, in index order.
    pub const ALL: [AmpBucket; AMP_BUCKETS] = [
        AmpBucket::Dns,
        AmpBucket::Ntp,
        AmpBucket::Memcached,
        AmpBucket::Ssdp,
        AmpBucket::Cldap,
        AmpBucket::Snmp,
        AmpBucket::Chargen,
        AmpBucket::Other,
    ];

    /// Index into [`AmpCounters`](crate::AmpCounters) arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// A well-known UDP reflector: responses arrive from this source port.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Reflector {
    /// UDP source port of the responses.
    pub port: u16,
    /// Short protocol name.
    pub name: &'static str,
    /// Its amplification bucket (the family its responses belong to).
    pub bucket: AmpBucket,
}

const fn r(port: u16, name: &'static str, bucket: AmpBucket) -> Reflector {
    Reflector { port, name, bucket }
}

/// The reflector table, by ascending port. Index `i` here is what [`reflector_index`]
/// returns and what the detector's per-reflector counters are indexed by.
///
/// Only ports whose responses are a documented amplification vector are listed. Ports that
/// mostly carry legitimate bidirectional flows into servers (QUIC 443, OpenVPN 1194) are left
/// out so that ordinary UDP traffic is not called amplification. IKE NAT-T (4500) is listed:
/// floods of fixed-size responses from thousands of IPsec gateways' port 4500 to random
/// destination ports are a reflection vector seen in the wild, and a server's own NAT-T
/// traffic stays far below the per-IP floors.
pub const REFLECTORS: &[Reflector] = &[
    // QOTD: a quote per datagram, ~140x.
    r(17, "qotd", AmpBucket::Other),
    // Chargen: up to 512 random characters per request, ~360x.
    r(19, "chargen", AmpBucket::Chargen),
    // DNS: ANY/DNSSEC responses, 28-54x, often fragmented.
    r(53, "dns", AmpBucket::Dns),
    // TFTP: error/data responses to read requests, ~60x.
    r(69, "tftp", AmpBucket::Other),
    // Portmapper/rpcbind dump, 7-28x.
    r(111, "portmap", AmpBucket::Other),
    // NTP: monlist (mode 7) 468-byte entries, up to 556x.
    r(123, "ntp", AmpBucket::Ntp),
    // NetBIOS name service node-status responses, ~3.8x.
    r(137, "netbios", AmpBucket::Other),
    // SNMPv2 GetBulk responses, ~6x.
    r(161, "snmp", AmpBucket::Snmp),
    // CLDAP (connectionless LDAP) rootDSE, 56-70x, fragmented ~3 kB responses.
    r(389, "cldap", AmpBucket::Cldap),
    // SLP (CVE-2023-29552), up to 2200x.
    r(427, "slp", AmpBucket::Other),
    // ISAKMP/IKE responder retransmissions.
    r(500, "isakmp", AmpBucket::Other),
    // RIPv1 table responses, ~131x.
    r(520, "ripv1", AmpBucket::Other),
    // MS-SQL Server Resolution Protocol (browser), ~25x.
    r(1434, "mssql", AmpBucket::Other),
    // SSDP M-SEARCH responses, ~30x.
    r(1900, "ssdp", AmpBucket::Ssdp),
    // Apple Remote Desktop, ~35x.
    r(3283, "ard", AmpBucket::Other),
    // Microsoft RDP over UDP, ~86x.
    r(3389, "rdp", AmpBucket::Other),
    // STUN binding responses, ~2x (abused at scale).
    r(3478, "stun", AmpBucket::Other),
    // WS-Discovery probe responses, up to 500x.
    r(3702, "ws_discovery", AmpBucket::Other),
    // IKE NAT-T responder retransmissions from IPsec gateways (fixed-size, many sources).
    r(4500, "ike_natt", AmpBucket::Other),
    // Sentinel license manager, ~40x.
    r(5093, "sentinel", AmpBucket::Other),
    // mDNS unicast query responses, 2-10x.
    r(5353, "mdns", AmpBucket::Other),
    // CoAP (IoT) responses, up to 34x.
    r(5683, "coap", AmpBucket::Other),
    // BitTorrent DHT responses, 4-54x.
    r(6881, "bittorrent_dht", AmpBucket::Other),
    // Ubiquiti discovery, ~30x.
    r(10001, "ubiquiti", AmpBucket::Other),
    // memcached stats/get over UDP, up to 51,000x.
    r(11211, "memcached", AmpBucket::Memcached),
    // Valve/Steam A2S queries, ~5x.
    r(27015, "steam", AmpBucket::Other),
    // Lantronix discovery, ~30x.
    r(30718, "lantronix", AmpBucket::Other),
    // Plex Media Server GDM, ~5x.
    r(32414, "plex", AmpBucket::Other),
    // Jenkins auto-discovery, ~100x.
    r(33848, "jenkins", AmpBucket::Other),
    // DVR DHCPDiscover, ~150x.
    r(37810, "dvr_dhcpdiscover", AmpBucket::Other),
];

/// Number of entries in [`REFLECTORS`].
pub const N_REFLECTORS: usize = REFLECTORS.len();

const NO_REFLECTOR: u8 = u8::MAX;

const _: () = assert!(N_REFLECTORS < NO_REFLECTOR as usize);

/// Source port → index into [`REFLECTORS`], or [`NO_REFLECTOR`]. 64 KiB, built at compile
/// time; compilation fails on a duplicate port.
static REFLECTOR_BY_PORT: [u8; 65536] = build_reflector_index();

const fn build_reflector_index() -> [u8; 65536] {
    let mut t = [NO_REFLECTOR; 65536];
    let mut i = 0;
    while i < N_REFLECTORS {
        let p = REFLECTORS[i].port as usize;
        assert!(t[p] == NO_REFLECTOR, "duplicate port in REFLECTORS");
        t[p] = i as u8;
        i += 1;
    }
    t
}

/// The [`REFLECTORS`] index of a UDP source port, `None` when it is not a reflector port.
/// One load from a 64 KiB table.
#[inline]
pub fn reflector_index(src_port: u16) -> Option<u8> {
    let i = REFLECTOR_BY_PORT[usize::from(src_port)];
    (i != NO_REFLECTOR).then_some(i)
}
