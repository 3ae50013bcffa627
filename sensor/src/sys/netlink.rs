//! rtnetlink link messages: a socket subscribed to the kernel's link events (`RTNLGRP_LINK`:
//! `RTM_NEWLINK` when an interface appears or changes, `RTM_DELLINK` when it is deleted), and
//! one-shot `RTM_GETLINK` queries of an interface by name.
//!
//! The socket is `netlink-sys`'s synchronous one (no async runtime), non-blocking, read by the
//! live coordinator between ticks; the messages are `netlink-packet-route`'s. What is kept of a
//! link message is the plain [`LinkInfo`] (index, name, up, MTU, XDP attachment): deciding what
//! a change means for capture is the caller's job ([`crate::livesrc`]).
//!
//! Like every socket, it answers for the network namespace of the thread that created it.

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, LinkXdp, XdpAttached};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};

/// `RTNLGRP_LINK`: the multicast group of link events.
const RTNLGRP_LINK: u32 = 1;
/// Receive buffer of the event socket: room for bursts of events (an interface deleted and
/// recreated sends a handful) between two reads.
const EVENT_RCVBUF: usize = 1 << 20;
/// Bytes read at once; one datagram holds one or more whole messages.
const READ_BUF: usize = 64 * 1024;

/// Where the XDP hook of an interface is held (`IFLA_XDP_ATTACHED`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum XdpHook {
    /// No program.
    None,
    /// A program in the driver (native XDP).
    Driver,
    /// A program in generic (skb) mode.
    Skb,
    /// A program offloaded to the NIC.
    Hardware,
    /// Programs in several modes.
    Multiple,
    /// A mode this code does not know.
    Other(u8),
}

impl XdpHook {
    /// The mode as `ip link` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            XdpHook::None => "none",
            XdpHook::Driver => "driver",
            XdpHook::Skb => "generic (skb)",
            XdpHook::Hardware => "offload",
            XdpHook::Multiple => "several",
            XdpHook::Other(_) => "unknown",
        }
    }
}

/// What a link message says about an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub ifindex: u32,
    /// Name (`IFLA_IFNAME`), when the message carries it.
    pub name: Option<String>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// MTU (`IFLA_MTU`), when the message carries it.
    pub mtu: Option<u32>,
    /// The XDP hook (`IFLA_XDP`); `None` when the message does not say.
    pub xdp: Option<XdpHook>,
    /// The id of the XDP program attached (`IFLA_XDP_PROG_ID`; for several modes, one of them).
    pub xdp_prog_id: Option<u32>,
}

impl LinkInfo {
    /// What is known of interface `ifindex` once it is gone: its index only.
    pub fn gone(ifindex: u32) -> LinkInfo {
        LinkInfo {
            ifindex,
            name: None,
            up: false,
            mtu: None,
            xdp: None,
            xdp_prog_id: None,
        }
    }

    /// The fields of a link message.
    pub fn from_message(m: &LinkMessage) -> LinkInfo {
        let mut info = LinkInfo {
            ifindex: m.header.index,
            name: None,
            up: m.header.flags.contains(LinkFlags::Up),
            mtu: None,
            xdp: None,
            xdp_prog_id: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => info.name = Some(n.clone()),
                LinkAttribute::Mtu(v) => info.mtu = Some(*v),
                LinkAttribute::Xdp(xs) => {
                    info.xdp = Some(XdpHook::None);
                    for x in xs {
                        match x {
                            LinkXdp::Attached(at) => {
                                info.xdp = Some(match at {
                                    XdpAttached::None => XdpHook::None,
                                    XdpAttached::Driver => XdpHook::Driver,
                                    XdpAttached::SocketBuffer => XdpHook::Skb,
                                    XdpAttached::Hardware => XdpHook::Hardware,
                                    XdpAttached::Multiple => XdpHook::Multiple,
                                    XdpAttached::Other(v) => XdpHook::Other(*v),
                                    _ => XdpHook::Other(u8::MAX),
                                })
                            }
                            LinkXdp::ProgId(id)
                            | LinkXdp::DrvProgId(id)
                            | LinkXdp::SkbProgId(id)
                            | LinkXdp::HwProgId(id)
                                if *id != 0 && info.xdp_prog_id.is_none() =>
                            {
                                info.xdp_prog_id = Some(*id);
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        info
    }

    /// Whether a program holds the interface's XDP hook.
    pub fn xdp_attached(&self) -> bool {
        self.xdp.is_some_and(|h| h != XdpHook::None)
    }
}

/// One link event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// `RTM_NEWLINK`: an interface appeared or changed.
    New(LinkInfo),
    /// `RTM_DELLINK`: an interface was deleted.
    Del(LinkInfo),
}

/// Appends the link events of one datagram (one or more netlink messages) to `out`; returns
/// false when part of it could not be decoded (the caller should re-read the state it cares
/// about instead of trusting the events).
pub fn parse_events(mut bytes: &[u8], out: &mut Vec<LinkEvent>) -> bool {
    while !bytes.is_empty() {
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) else {
            return false;
        };
        let len = msg.header.length as usize;
        match msg.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
                out.push(LinkEvent::New(LinkInfo::from_message(&m)))
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => {
                out.push(LinkEvent::Del(LinkInfo::from_message(&m)))
            }
            NetlinkPayload::Overrun(_) => return false,
            _ => {}
        }
        // Messages are 4-byte aligned within a datagram.
        let step = len.div_ceil(4) * 4;
        if len == 0 {
            return false;
        }
        bytes = bytes.get(step..).unwrap_or_default();
    }
    true
}

/// A netlink socket subscribed to link events, non-blocking.
pub struct LinkEvents {
    sock: Socket,
    buf: Vec<u8>,
}

impl std::fmt::Debug for LinkEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkEvents").finish_non_exhaustive()
    }
}

/// What a read of [`LinkEvents`] found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// Every event queued was read (possibly none).
    Complete,
    /// Events were lost (the socket's buffer overflowed, `ENOBUFS`) or could not be decoded:
    /// the caller should query the state it follows.
    Lost,
}

impl LinkEvents {
    /// Subscribes to the link events of the calling thread's network namespace.
    pub fn subscribe() -> io::Result<LinkEvents> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.add_membership(RTNLGRP_LINK)?;
        // Best effort: the default buffer holds fewer events.
        let _ = sock.set_rx_buf_sz(EVENT_RCVBUF);
        sock.set_non_blocking(true)?;
        Ok(LinkEvents {
            sock,
            buf: Vec::with_capacity(READ_BUF),
        })
    }

    /// Reads every event queued now into `out` (never blocks).
    pub fn read(&mut self, out: &mut Vec<LinkEvent>) -> io::Result<Received> {
        let mut complete = true;
        loop {
            self.buf.clear();
            match self.sock.recv(&mut self.buf, libc::MSG_DONTWAIT) {
                Ok(0) => break,
                Ok(_) => complete &= parse_events(&self.buf, out),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => complete = false,
                Err(e) => return Err(e),
            }
        }
        Ok(if complete {
            Received::Complete
        } else {
            Received::Lost
        })
    }
}

/// `RTM_GETLINK` of the interface named `name`: `Ok(None)` when there is none.
pub fn link_by_name(name: &str) -> io::Result<Option<LinkInfo>> {
    // The kernel refuses names it could not hold; so does this.
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Ok(None);
    }
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let mut req = LinkMessage::default();
    req.attributes.push(LinkAttribute::IfName(name.to_owned()));
    let mut packet = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::from(RouteNetlinkMessage::GetLink(req)),
    );
    packet.header.flags = NLM_F_REQUEST;
    packet.header.sequence_number = 1;
    packet.finalize();
    let mut out = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut out);
    sock.send(&out, 0)?;
    let mut buf = Vec::with_capacity(READ_BUF);
    sock.recv(&mut buf, 0)?;
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    if msg.header.flags & NLM_F_DUMP_INTR != 0 {
        return Err(io::Error::from_raw_os_error(libc::EAGAIN));
    }
    match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
            Ok(Some(LinkInfo::from_message(&m)))
        }
        NetlinkPayload::Error(e) if e.raw_code().abs() == libc::ENODEV => Ok(None),
        NetlinkPayload::Error(e) if e.code.is_some() => Err(e.to_io()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected answer to RTM_GETLINK",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(new: bool, index: u32, attrs: Vec<LinkAttribute>, up: bool) -> Vec<u8> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        if up {
            m.header.flags = LinkFlags::Up;
        }
        m.attributes = attrs;
        let inner = if new {
            RouteNetlinkMessage::NewLink(m)
        } else {
            RouteNetlinkMessage::DelLink(m)
        };
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(inner));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        out
    }

    #[test]
    fn link_messages_give_index_name_mtu_and_the_xdp_hook() {
        let mut bytes = message(
            true,
            7,
            vec![
                LinkAttribute::IfName("swv0".into()),
                LinkAttribute::Mtu(3000),
                LinkAttribute::Xdp(vec![
                    LinkXdp::Attached(XdpAttached::Driver),
                    LinkXdp::ProgId(42),
                ]),
            ],
            true,
        );
        bytes.extend(message(
            false,
            5,
            vec![LinkAttribute::IfName("swv0".into())],
            false,
        ));
        let mut out = Vec::new();
        assert!(parse_events(&bytes, &mut out));
        assert_eq!(
            out,
            vec![
                LinkEvent::New(LinkInfo {
                    ifindex: 7,
                    name: Some("swv0".into()),
                    up: true,
                    mtu: Some(3000),
                    xdp: Some(XdpHook::Driver),
                    xdp_prog_id: Some(42),
                }),
                LinkEvent::Del(LinkInfo {
                    ifindex: 5,
                    name: Some("swv0".into()),
                    up: false,
                    mtu: None,
                    xdp: None,
                    xdp_prog_id: None,
                }),
            ]
        );
        let LinkEvent::New(first) = &out[0] else {
            unreachable!()
        };
        assert!(first.xdp_attached());
    }

    #[test]
    fn damaged_datagrams_are_reported_not_trusted() {
        let bytes = message(true, 7, vec![LinkAttribute::Mtu(1500)], true);
        for cut in [1, 4, 15, bytes.len() - 1] {
            let mut out = Vec::new();
            // Never panics; a cut message is never taken for a whole one.
            let ok = parse_events(&bytes[..cut], &mut out);
            assert!(!ok || out.is_empty(), "cut at {cut}");
        }
        let mut out = Vec::new();
        assert!(parse_events(&[], &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn loopback_is_found_by_name_and_unknown_names_are_none() {
        // Every network namespace has `lo`; the query needs no privilege.
        let lo = link_by_name("lo")
            .expect("RTM_GETLINK lo")
            .expect("lo exists");
        assert!(lo.ifindex > 0);
        assert_eq!(lo.name.as_deref(), Some("lo"));
        assert!(lo.mtu.is_some());
        for name in ["sw-nonexist0", "", "a-name-of-sixteen", "nul\0inside"] {
            assert_eq!(link_by_name(name).expect("query"), None, "{name:?}");
        }
    }
}
