//! What [`crate::parse_with()`] does beyond plain parsing: tunnel decapsulation.

use crate::wire::VXLAN_PORT;

/// Most tunnel levels ever decapsulated, whatever [`Decap::max_depth`] asks for.
pub const MAX_DECAP_DEPTH: u8 = 2;

/// Options of [`crate::parse_with()`]. [`Default`] is [`ParseOptions::NONE`], which is what
/// [`crate::parse()`] uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct ParseOptions {
    /// Which tunnels to decapsulate.
    pub decap: Decap,
}

impl ParseOptions {
    /// Plain parsing: tunnels are reported by their outer IP protocol.
    pub const NONE: ParseOptions = ParseOptions { decap: Decap::NONE };
    /// A mirror-port sensor: every supported tunnel decapsulated ([`Decap::MIRROR`]).
    pub const MIRROR: ParseOptions = ParseOptions {
        decap: Decap::MIRROR,
    };

    /// Options with the given decapsulation settings.
    pub const fn new(decap: Decap) -> Self {
        ParseOptions { decap }
    }
}

/// Tunnel decapsulation: when a frame carries an enabled encapsulation, the summary describes
/// the inner frame (see [`crate::PacketSummary::encap`]).
///
/// Off by default. Decapsulation is right where every tunnel is a mirror transport (a SPAN /
/// ERSPAN / VXLAN collector port) and wrong on an ordinary link: there the tunnel endpoints
/// are the traffic, and an attacker who sends GRE or UDP/4789 (Mirai's GRE floods, for one)
/// would have its packets accounted to whatever inner addresses it wrote, and the real
/// target's volume shrunk by the encapsulation overhead. Enable it where the sensor is a
/// mirror destination.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Decap {
    /// GRE (version 0) carrying Ethernet (transparent Ethernet bridging, 0x6558, NVGRE
    /// included), IPv4 (0x0800) or IPv6 (0x86DD).
    pub gre: bool,
    /// ERSPAN type II (GRE 0x88BE) and type III (GRE 0x22EB).
    pub erspan: bool,
    /// VXLAN to one of [`Self::vxlan_ports`].
    pub vxlan: bool,
    /// UDP destination ports that carry VXLAN; 0 marks an unused slot. Default
    /// `[4789, 0, 0, 0]`; Linux's historical 8472 is a common addition.
    pub vxlan_ports: [u16; 4],
    /// Most tunnel levels to decapsulate, capped at [`MAX_DECAP_DEPTH`] (2: an ERSPAN mirror
    /// of VXLAN fabric traffic, say). With 1 only the mirror transport is removed and a
    /// tunnel inside it is summarised by its IP protocol; 0 turns decapsulation off.
    pub max_depth: u8,
}

impl Decap {
    /// No decapsulation.
    pub const NONE: Decap = Decap {
        gre: false,
        erspan: false,
        vxlan: false,
        vxlan_ports: [VXLAN_PORT, 0, 0, 0],
        max_depth: MAX_DECAP_DEPTH,
    };

    /// Every supported encapsulation, VXLAN on port 4789, two levels.
    pub const MIRROR: Decap = Decap {
        gre: true,
        erspan: true,
        vxlan: true,
        vxlan_ports: [VXLAN_PORT, 0, 0, 0],
        max_depth: MAX_DECAP_DEPTH,
    };

    /// Whether any encapsulation is enabled (and `max_depth` allows at least one level).
    #[inline]
    pub const fn any(&self) -> bool {
        (self.gre || self.erspan || self.vxlan) && self.max_depth > 0
    }

    /// Whether UDP to `dst_port` is decapsulated as VXLAN.
    #[inline]
    pub fn is_vxlan_port(&self, dst_port: u16) -> bool {
        self.vxlan && dst_port != 0 && self.vxlan_ports.contains(&dst_port)
    }

    /// [`Self::max_depth`] capped at [`MAX_DECAP_DEPTH`].
    #[inline]
    pub const fn depth_limit(&self) -> u8 {
        if self.max_depth < MAX_DECAP_DEPTH {
            self.max_depth
        } else {
            MAX_DECAP_DEPTH
        }
    }
}

impl Default for Decap {
    /// [`Decap::NONE`].
    fn default() -> Self {
        Decap::NONE
    }
}
