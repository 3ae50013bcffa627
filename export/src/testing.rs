//! Test helpers.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A writer whose bytes the test can read back while a sink thread owns a clone of it.
#[derive(Clone, Default)]
pub(crate) struct SharedBuf(pub(crate) Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub(crate) fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An incident event of incident `id` on 203.0.113.10 (group 0), every list filled.
pub(crate) fn incident(
    kind: surgewatch_detect::EventKind,
    id: u64,
) -> surgewatch_detect::IncidentEvent {
    use surgewatch_detect::Family;
    use surgewatch_pipeline::TrafficClass;
    surgewatch_detect::IncidentEvent {
        kind,
        incident_id: id,
        target: [203, 0, 113, 10].into(),
        prefix_len: None,
        group: surgewatch_per_ip::GroupId(0),
        family: Family::MultiVector,
        vectors: vec![Family::SynFlood, Family::NtpAmplification],
        confidence: 86,
        ts_ns: 1_767_225_603_000_000_000,
        onset_ns: 1_767_225_602_000_000_000,
        pps: 2344,
        bps: 4_000_000,
        peak_pps: 2344,
        peak_bps: 4_000_000,
        packets: 2344,
        bytes: 500_000,
        over_classes: vec![TrafficClass::Syn, TrafficClass::Udp],
        threshold: surgewatch_detect::baseline::Rates {
            pps: 1000.0,
            bps: f64::INFINITY,
        },
        unique_sources: 12,
        spoofed: false,
        top_sources: vec![([198, 18, 0, 7].into(), 120, 240)],
        top_dst_ports: vec![(80, 900, 1800)],
        top_src_ports: vec![(123, 400, 800)],
        lengths: vec![("0-63", 10), ("64-127", 5)],
        mean_length: 213,
        distinct_ttls: 3,
        ttl_range: (52, 64),
        timeline: Vec::new(),
    }
}
