//! The capture generator: a seeded RNG, a virtual clock and the list of records written so far,
//! with helpers for benign background flows, spoofed sources and application payloads.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::expected::{is_monitored, Acct, AttackSpec, Record};
use crate::packet::{tcp_flags::*, Eth, Net, Packet, Tcp, Transport, Vlan, V4, V6};

/// Start of every catalogue capture: 2026-01-01T00:00:00Z, in seconds since the Unix epoch.
pub const EPOCH_SECS: u64 = 1_767_225_600;
/// One second in nanoseconds.
pub const S: u64 = 1_000_000_000;
/// One millisecond in nanoseconds.
pub const MS: u64 = 1_000_000;
/// One microsecond in nanoseconds.
pub const US: u64 = 1_000;
/// `EPOCH_SECS` in nanoseconds.
pub const T0: u64 = EPOCH_SECS * S;
/// IP MTU used for fragmentation.
pub const MTU: usize = 1500;

/// MAC address of the upstream router in every capture.
pub const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x01];

/// 64-bit FNV-1a, to derive a per-capture seed from its name.
pub fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A locally administered MAC derived from an address.
pub fn mac_of(ip: IpAddr) -> [u8; 6] {
    let tail = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [
        0x02,
        if ip.is_ipv4() { 0x04 } else { 0x06 },
        tail[0],
        tail[1],
        tail[2],
        tail[3],
    ]
}

/// Shorthand for an IPv4 address.
pub fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// Shorthand for an IPv6 address from its text form (generator constants only).
pub fn v6(s: &str) -> IpAddr {
    match s.parse::<Ipv6Addr>() {
        Ok(a) => IpAddr::V6(a),
        Err(e) => panic!("bad IPv6 constant {s}: {e}"),
    }
}

/// State of one capture being generated.
pub struct Gen {
    /// The seeded RNG; every random choice of the capture comes from it.
    pub rng: ChaCha8Rng,
    res_ns: u64,
    snaplen: u32,
    recs: Vec<Record>,
    attacks: Vec<AttackSpec>,
    /// VLAN tags put on frames built by [`Gen::pkt`].
    pub vlans: Vec<Vlan>,
    ip_id: u16,
    frag_id: u32,
}

impl Gen {
    /// A generator seeded from the capture name, with the file's timestamp resolution and snaplen.
    pub fn new(name: &str, res_ns: u64, snaplen: u32) -> Self {
        Gen {
            rng: ChaCha8Rng::seed_from_u64(fnv1a(name)),
            res_ns,
            snaplen,
            recs: Vec::new(),
            attacks: Vec::new(),
            vlans: Vec::new(),
            ip_id: 1,
            frag_id: 1,
        }
    }

    fn quantize(&self, ts: u64) -> u64 {
        ts / self.res_ns * self.res_ns
    }

    /// Registers an attack and returns its index for [`Gen::push`].
    pub fn attack(
        &mut self,
        family: &'static str,
        target: IpAddr,
        vectors: &[&'static str],
    ) -> usize {
        self.attacks.push(AttackSpec {
            family,
            target,
            vectors: vectors.to_vec(),
        });
        self.attacks.len() - 1
    }

    /// Builds `p` (fragmenting above the MTU) and records its frame(s) from `ts` on, 3 µs apart.
    pub fn push(&mut self, ts: u64, p: &Packet, attack: Option<usize>) {
        let (src, dst) = (p.net.src(), p.net.dst());
        for (i, f) in p.build(MTU).into_iter().enumerate() {
            assert!(
                f.header_len <= self.snaplen as usize,
                "snaplen {} would cut headers of a {}-byte header frame",
                self.snaplen,
                f.header_len
            );
            let ts = self.quantize(ts + i as u64 * 3 * US);
            self.recs.push(Record {
                ts_ns: ts,
                orig_len: f.bytes.len() as u32,
                data: f.bytes,
                acct: Acct::Ip {
                    src,
                    dst,
                    class: f.class,
                },
                attack,
            });
        }
    }

    /// Records a hand-made frame: `data` is what is captured, `orig_len` the wire length.
    pub fn push_raw(&mut self, ts: u64, data: Vec<u8>, orig_len: u32, acct: Acct) {
        let ts = self.quantize(ts);
        self.recs.push(Record {
            ts_ns: ts,
            orig_len: orig_len.max(data.len() as u32),
            data,
            acct,
            attack: None,
        });
    }

    /// The records sorted by time (stable) and the attacks.
    pub fn finish(mut self) -> (Vec<Record>, Vec<AttackSpec>) {
        self.recs.sort_by_key(|r| r.ts_ns);
        (self.recs, self.attacks)
    }

    /// Ethernet header for a packet between `src` and `dst` through the router.
    pub fn eth(&self, src: IpAddr, dst: IpAddr) -> Eth {
        let (s, d) = match (is_monitored(src), is_monitored(dst)) {
            (true, true) => (mac_of(src), mac_of(dst)),
            (true, false) => (mac_of(src), ROUTER_MAC),
            _ => (ROUTER_MAC, mac_of(dst)),
        };
        Eth::new(s, d).with_vlans(&self.vlans)
    }

    /// Network header between two addresses of the same family.
    pub fn net(&mut self, src: IpAddr, dst: IpAddr, ttl: u8) -> Net {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                self.ip_id = self.ip_id.wrapping_add(self.rng.gen_range(1..40));
                let mut h = V4::new(s, d);
                h.ttl = ttl;
                h.id = self.ip_id;
                Net::V4(h)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                self.frag_id = self.frag_id.wrapping_add(self.rng.gen_range(1..40));
                let mut h = V6::new(s, d);
                h.hop_limit = ttl;
                h.frag_id = self.frag_id;
                h.flow = self.rng.gen_range(0..0x10_0000);
                Net::V6(h)
            }
            _ => panic!("mixed address families {src} -> {dst}"),
        }
    }

    /// A packet with TTL / hop limit 64.
    pub fn pkt(&mut self, src: IpAddr, dst: IpAddr, l4: Transport, payload: Vec<u8>) -> Packet {
        Packet {
            eth: self.eth(src, dst),
            net: self.net(src, dst, 64),
            l4,
            payload,
        }
    }

    /// A spoofed-looking packet: random TTL, no DF.
    pub fn spoofed(&mut self, src: IpAddr, dst: IpAddr, l4: Transport, payload: Vec<u8>) -> Packet {
        let ttl = self.rng.gen_range(30..=250);
        Packet {
            eth: self.eth(src, dst),
            net: self.net(src, dst, ttl),
            l4,
            payload,
        }
    }

    /// A random index below `len` (sampled as `u32`, so captures are the same on every
    /// pointer width).
    pub fn pick(&mut self, len: usize) -> usize {
        self.rng.gen_range(0..len as u32) as usize
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.rng.fill(&mut v[..]);
        v
    }

    /// An ephemeral port.
    pub fn eport(&mut self) -> u16 {
        self.rng.gen_range(32768..61000)
    }

    /// A random unicast-looking public IPv4 address outside the monitored prefixes.
    pub fn rand_v4(&mut self) -> IpAddr {
        loop {
            let a = Ipv4Addr::from(self.rng.gen::<u32>());
            let o = a.octets();
            let bad = matches!(o[0], 0 | 10 | 127 | 224..=255)
                || (o[0] == 100 && o[1] & 0xc0 == 64)
                || (o[0] == 169 && o[1] == 254)
                || (o[0] == 172 && o[1] & 0xf0 == 16)
                || (o[0] == 192 && o[1] == 168);
            if !bad && !is_monitored(IpAddr::V4(a)) {
                return IpAddr::V4(a);
            }
        }
    }

    /// A random global-unicast IPv6 address (2000::/3) outside the monitored prefix.
    pub fn rand_v6(&mut self) -> IpAddr {
        loop {
            let x: u128 = self.rng.gen();
            let a = Ipv6Addr::from((x & !(0xe000u128 << 112)) | (0x2000u128 << 112));
            if !is_monitored(IpAddr::V6(a)) {
                return IpAddr::V6(a);
            }
        }
    }

    /// A benign outside peer: 192.0.2.0/24 (TEST-NET-1) or 2001:db8:f00::/48.
    pub fn peer(&mut self, like: IpAddr) -> IpAddr {
        match like {
            IpAddr::V4(_) => v4(192, 0, 2, self.rng.gen_range(2..250)),
            IpAddr::V6(_) => {
                let mut s = [0x2001, 0x0db8, 0x0f00, 0, 0, 0, 0, 0];
                s[7] = self.rng.gen_range(2..0xfff0);
                IpAddr::V6(Ipv6Addr::from(s))
            }
        }
    }

    /// The outside DNS resolver of the family of `like`.
    pub fn resolver(like: IpAddr) -> IpAddr {
        match like {
            IpAddr::V4(_) => v4(192, 0, 2, 53),
            IpAddr::V6(_) => v6("2001:db8:f00::53"),
        }
    }

    /// Times of `rate_pps` packets per second over `dur_ns` from `start`, with up to 1/4
    /// interval of jitter each.
    pub fn schedule(&mut self, start: u64, dur_ns: u64, rate_pps: u64) -> Vec<u64> {
        let n = rate_pps * dur_ns / S;
        let iv = S / rate_pps;
        (0..n)
            .map(|i| start + i * iv + self.rng.gen_range(0..iv / 4))
            .collect()
    }

    /// Records one TCP segment (DF set, as a real stack would).
    #[allow(clippy::too_many_arguments)]
    pub fn tcp(
        &mut self,
        ts: u64,
        src: IpAddr,
        dst: IpAddr,
        ports: (u16, u16),
        flags: u8,
        seq_ack: (u32, u32),
        payload_len: usize,
    ) {
        let mut t = Tcp::new(ports.0, ports.1, flags);
        t.seq = seq_ack.0;
        t.ack = if flags & ACK != 0 { seq_ack.1 } else { 0 };
        if flags & SYN != 0 {
            t.options = Tcp::syn_options(self.rng.gen());
        }
        let payload = self.bytes(payload_len);
        let mut p = self.pkt(src, dst, Transport::Tcp(t), payload);
        if let Net::V4(h) = &mut p.net {
            h.df = true;
        }
        self.push(ts, &p, None);
    }

    /// A whole TCP connection: handshake, request, response in MSS-sized segments, FIN exchange.
    pub fn tcp_session(
        &mut self,
        t: u64,
        client: IpAddr,
        server: IpAddr,
        dport: u16,
        req: usize,
        resp: usize,
    ) {
        let sport = self.eport();
        let (c, s) = ((sport, dport), (dport, sport));
        let rtt = self.rng.gen_range(2 * MS..40 * MS);
        let mut cs: u32 = self.rng.gen();
        let mut ss: u32 = self.rng.gen();
        let mss = if client.is_ipv4() { 1448 } else { 1428 };
        self.tcp(t, client, server, c, SYN, (cs, 0), 0);
        cs = cs.wrapping_add(1);
        self.tcp(t + rtt / 2, server, client, s, SYN | ACK, (ss, cs), 0);
        ss = ss.wrapping_add(1);
        let mut now = t + rtt;
        self.tcp(now, client, server, c, ACK, (cs, ss), 0);
        now += 30 * US;
        self.tcp(now, client, server, c, PSH | ACK, (cs, ss), req);
        cs = cs.wrapping_add(req as u32);
        now += rtt / 2 + self.rng.gen_range(100 * US..5 * MS);
        let mut left = resp;
        while left > 0 {
            let n = left.min(mss);
            left -= n;
            let f = if left == 0 { PSH | ACK } else { ACK };
            self.tcp(now, server, client, s, f, (ss, cs), n);
            ss = ss.wrapping_add(n as u32);
            now += self.rng.gen_range(20 * US..200 * US);
        }
        now += rtt / 2;
        self.tcp(now, client, server, c, ACK, (cs, ss), 0);
        now += self.rng.gen_range(MS..50 * MS);
        self.tcp(now, client, server, c, FIN | ACK, (cs, ss), 0);
        cs = cs.wrapping_add(1);
        now += rtt / 2;
        self.tcp(now, server, client, s, FIN | ACK, (ss, cs), 0);
        ss = ss.wrapping_add(1);
        now += rtt / 2;
        self.tcp(now, client, server, c, ACK, (cs, ss), 0);
    }

    /// A DNS query from `client` to the resolver and its response.
    pub fn dns_exchange(&mut self, t: u64, client: IpAddr) {
        let resolver = Self::resolver(client);
        let id: u16 = self.rng.gen();
        let names = [
            "www.example.com",
            "api.example.net",
            "mail.example.org",
            "cdn.example",
        ];
        let name = names[self.pick(names.len())];
        let qtype = if client.is_ipv4() { 1 } else { 28 };
        let sport = self.eport();
        let q = self.pkt(
            client,
            resolver,
            Transport::Udp { sport, dport: 53 },
            dns_query(id, name, qtype),
        );
        self.push(t, &q, None);
        let size = self.rng.gen_range(60u32..400) as usize;
        let body = dns_response(id, name, qtype, size);
        let r = self.pkt(
            resolver,
            client,
            Transport::Udp {
                sport: 53,
                dport: sport,
            },
            body,
        );
        let dt = self.rng.gen_range(MS..30 * MS);
        self.push(t + dt, &r, None);
    }

    /// An ICMP / ICMPv6 echo request and its reply.
    pub fn ping(&mut self, t: u64, from: IpAddr, to: IpAddr) {
        let (req, rep) = if from.is_ipv4() { (8, 0) } else { (128, 129) };
        let id: u16 = self.rng.gen();
        let seq: u16 = self.rng.gen_range(1..100);
        let payload = self.bytes(56);
        let p = self.pkt(from, to, Transport::echo(req, id, seq), payload.clone());
        self.push(t, &p, None);
        let r = self.pkt(to, from, Transport::echo(rep, id, seq), payload);
        let dt = self.rng.gen_range(500 * US..40 * MS);
        self.push(t + dt, &r, None);
    }

    /// An NTP client request (mode 3) and server response (mode 4), 48 bytes each.
    pub fn ntp_client(&mut self, t: u64, client: IpAddr) {
        let server = match client {
            IpAddr::V4(_) => v4(192, 0, 2, 123),
            IpAddr::V6(_) => v6("2001:db8:f00::123"),
        };
        let mut q = vec![0u8; 48];
        q[0] = 0x23;
        let mut r = self.bytes(48);
        r[..4].copy_from_slice(&[0x24, 2, 6, 0xe9]);
        let p = self.pkt(
            client,
            server,
            Transport::Udp {
                sport: 123,
                dport: 123,
            },
            q,
        );
        self.push(t, &p, None);
        let p = self.pkt(
            server,
            client,
            Transport::Udp {
                sport: 123,
                dport: 123,
            },
            r,
        );
        let dt = self.rng.gen_range(5 * MS..60 * MS);
        self.push(t + dt, &p, None);
    }

    /// A SYN to a closed port answered by RST|ACK.
    pub fn rejected(&mut self, t: u64, client: IpAddr, server: IpAddr) {
        let sport = self.eport();
        let seq: u32 = self.rng.gen();
        self.tcp(t, client, server, (sport, 23), SYN, (seq, 0), 0);
        let dt = self.rng.gen_range(MS..20 * MS);
        let ack = seq.wrapping_add(1);
        self.tcp(t + dt, server, client, (23, sport), RST | ACK, (0, ack), 0);
    }

    /// `flows` random benign flows starting between `from` and `to`, involving `hosts`
    /// (monitored) and outside peers, in both directions, plus some host-to-host traffic.
    pub fn background(&mut self, from: u64, to: u64, hosts: &[IpAddr], flows: usize) {
        for _ in 0..flows {
            let t = self.rng.gen_range(from..to);
            let h = hosts[self.pick(hosts.len())];
            let peer = self.peer(h);
            match self.rng.gen_range(0..100) {
                0..=29 => {
                    let req = self.rng.gen_range(100u32..600) as usize;
                    let resp = self.rng.gen_range(200u32..4000) as usize;
                    let port = if self.rng.gen_bool(0.7) { 443 } else { 80 };
                    self.tcp_session(t, peer, h, port, req, resp);
                }
                30..=47 => {
                    let req = self.rng.gen_range(100u32..600) as usize;
                    let resp = self.rng.gen_range(200u32..3000) as usize;
                    self.tcp_session(t, h, peer, 443, req, resp);
                }
                48..=69 => self.dns_exchange(t, h),
                70..=77 => self.ping(t, peer, h),
                78..=83 => self.ping(t, h, peer),
                84..=89 => self.ntp_client(t, h),
                90..=94 => {
                    let same: Vec<IpAddr> = hosts
                        .iter()
                        .copied()
                        .filter(|o| o.is_ipv4() == h.is_ipv4() && *o != h)
                        .collect();
                    if same.is_empty() {
                        self.dns_exchange(t, h);
                    } else {
                        let other = same[self.pick(same.len())];
                        let resp = self.rng.gen_range(100u32..2000) as usize;
                        self.tcp_session(t, h, other, 22, 64, resp);
                    }
                }
                _ => self.rejected(t, peer, h),
            }
        }
    }
}

fn dns_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// A DNS query message for `name` / `qtype` (class IN, recursion desired).
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    dns_name(&mut m, name);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m
}

/// An NTP `monlist` response from `reflector` (source port 123) to a random port of `target`:
/// mode-7 header (MON_GETLIST_1, 6 items of 72 bytes) + items, 440 bytes of payload.
pub fn ntp_monlist(g: &mut Gen, target: IpAddr, reflector: IpAddr) -> Packet {
    let mut payload = vec![0xd7, 0x00, 0x03, 0x2a, 0x00, 0x06, 0x00, 0x48];
    let items = g.bytes(6 * 72);
    payload.extend_from_slice(&items);
    let dport = g.rng.gen_range(1024..=65535);
    g.spoofed(
        reflector,
        target,
        Transport::Udp { sport: 123, dport },
        payload,
    )
}

/// A DNS response to `name` / `qtype` whose answer section holds TXT records until the message
/// is at least `min_len` bytes (the shape of ANY/TXT amplification responses).
pub fn dns_response(id: u16, name: &str, qtype: u16, min_len: usize) -> Vec<u8> {
    let mut q = Vec::new();
    dns_name(&mut q, name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    let mut answers = Vec::new();
    let mut count: u16 = 0;
    let mut i = 0u8;
    while 12 + q.len() + answers.len() < min_len {
        let need = min_len - (12 + q.len() + answers.len());
        let text = need.saturating_sub(13).clamp(1, 255);
        answers.extend_from_slice(&[0xc0, 0x0c, 0x00, 0x10, 0x00, 0x01, 0, 0, 0x0e, 0x10]);
        answers.extend_from_slice(&((text + 1) as u16).to_be_bytes());
        answers.push(text as u8);
        answers.extend((0..text).map(|k| b'a' + ((k as u8).wrapping_add(i)) % 26));
        count += 1;
        i = i.wrapping_add(7);
    }
    let mut m = Vec::with_capacity(12 + q.len() + answers.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x81, 0x80, 0, 1]);
    m.extend_from_slice(&count.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&q);
    m.extend_from_slice(&answers);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_response_reaches_size() {
        let r = dns_response(7, "example.org", 255, 3000);
        assert!(r.len() >= 3000 && r.len() < 3000 + 270, "{}", r.len());
        assert_eq!(&r[..4], &[0, 7, 0x81, 0x80]);
    }

    #[test]
    fn random_sources_are_outside_monitor() {
        let mut g = Gen::new("t", 1000, 65535);
        for _ in 0..2000 {
            assert!(!is_monitored(g.rand_v4()));
            let a = g.rand_v6();
            assert!(!is_monitored(a));
            assert!(matches!(a, IpAddr::V6(x) if x.segments()[0] & 0xe000 == 0x2000));
        }
    }

    #[test]
    fn seeds_differ_by_name() {
        assert_ne!(fnv1a("a"), fnv1a("b"));
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
    }
}
