//! pcap and pcapng file source (placeholder until the reader lands).
