//! The first two sinks: JSON lines ([`JsonLinesSink`]) and readable text ([`TextSink`]),
//! written to stdout by [`super::build`] (to any writer in tests).
//!
//! Both write one line per incident event and the summary last. Text is meant for a
//! terminal that a progress bar on stderr may share: each line is written and flushed with
//! the bar suspended ([`Terminal`]), so the bar is cleared around it and redrawn after. The
//! JSON lines are meant for a program and are written without touching the bar.

use std::io::{self, Write};
use std::sync::Arc;

use super::{Message, Sink};
use crate::events::EventJson;
use crate::summary::SummaryJson;
use crate::terminal::Terminal;

/// Output format of the stdout sink.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// One readable line per event, then a multi-line summary.
    Text,
    /// One JSON object per line (the output contract, see the README).
    Json,
}

/// Config of the stdout output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StdoutConfig {
    /// Text or JSON lines.
    pub format: Format,
}

/// JSON lines: `{"event":"start"|"update"|"end",...}` per event, `{"event":"summary",...}`
/// last.
pub struct JsonLinesSink<W> {
    name: String,
    out: W,
    groups: Arc<[String]>,
}

impl<W: Write + Send> JsonLinesSink<W> {
    /// Writes to `out`; `groups` names the group ids.
    pub fn new(name: impl Into<String>, out: W, groups: Arc<[String]>) -> Self {
        JsonLinesSink {
            name: name.into(),
            out,
            groups,
        }
    }
}

impl<W: Write + Send> Sink for JsonLinesSink<W> {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, msg: &Message) -> io::Result<()> {
        match msg {
            Message::Incident(e) => writeln!(
                self.out,
                "{}",
                EventJson::new(e, &self.groups).to_json_line()
            ),
            Message::Mitigation(m) => writeln!(self.out, "{}", m.to_json()),
            Message::Summary(s) => writeln!(
                self.out,
                "{}",
                SummaryJson::new(&s.report, &s.info).to_json_line()
            ),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Text: one line per event, the summary's lines last, each written with the terminal's
/// bar (if any) suspended.
pub struct TextSink<W> {
    name: String,
    out: W,
    groups: Arc<[String]>,
    terminal: Option<Arc<dyn Terminal>>,
}

impl<W: Write + Send> TextSink<W> {
    /// Writes to `out`, around `terminal`'s bar; `groups` names the group ids.
    pub fn new(
        name: impl Into<String>,
        out: W,
        groups: Arc<[String]>,
        terminal: Option<Arc<dyn Terminal>>,
    ) -> Self {
        TextSink {
            name: name.into(),
            out,
            groups,
            terminal,
        }
    }
}

impl<W: Write + Send> Sink for TextSink<W> {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, msg: &Message) -> io::Result<()> {
        let text = match msg {
            Message::Incident(e) => {
                let mut line = EventJson::new(e, &self.groups).to_text();
                line.push('\n');
                line
            }
            Message::Mitigation(m) => m.to_text() + "\n",
            Message::Summary(s) => SummaryJson::new(&s.report, &s.info).to_text(),
        };
        let out = &mut self.out;
        match &self.terminal {
            // Flushed inside: the bar must not be redrawn before the line is out.
            Some(t) => {
                let mut res = Ok(());
                t.suspend(&mut || res = out.write_all(text.as_bytes()).and_then(|()| out.flush()));
                res
            }
            None => out.write_all(text.as_bytes()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::sink::{Delivery, Outputs, RunSummary};
    use crate::summary::RunInfo;
    use crate::testing::{incident, SharedBuf};
    use surgewatch_detect::EventKind;

    fn groups() -> Arc<[String]> {
        vec!["hosting".to_string()].into()
    }

    fn summary() -> Message {
        Message::Summary(RunSummary {
            report: surgewatch_per_ip::Report::default(),
            info: RunInfo {
                groups: groups().to_vec(),
                ..RunInfo::default()
            },
        })
    }

    fn run(sink: Box<dyn Sink>, msgs: Vec<Message>) -> crate::sink::Finished {
        let out = Outputs::start(vec![sink], Delivery::Block, 2).unwrap();
        for m in msgs {
            out.send(m);
        }
        out.finish()
    }

    #[test]
    fn json_lines_are_the_events_then_the_summary_flushed_at_finish() {
        let buf = SharedBuf::default();
        // A buffer larger than everything written: only flushing gets it out.
        let w = io::BufWriter::with_capacity(1 << 20, buf.clone());
        let events = [EventKind::Start, EventKind::Update, EventKind::End];
        let mut msgs: Vec<Message> = events
            .iter()
            .map(|&k| Message::Incident(incident(k, 7)))
            .collect();
        msgs.push(summary());
        let done = run(Box::new(JsonLinesSink::new("stdout", w, groups())), msgs);
        assert!(done.errors.is_empty());
        let text = buf.text();
        let kinds: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].clone())
            .collect();
        assert_eq!(kinds, ["start", "update", "end", "summary"]);
        let first = text.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            EventJson::new(&incident(EventKind::Start, 7), &groups()).to_json_line()
        );
    }

    /// Records whether the bar is suspended while bytes are written.
    struct Bar {
        suspended: Mutex<bool>,
        suspensions: AtomicU64,
    }

    impl Terminal for Bar {
        fn suspend(&self, write: &mut dyn FnMut()) {
            self.suspensions.fetch_add(1, Ordering::Relaxed);
            *self.suspended.lock().unwrap() = true;
            write();
            *self.suspended.lock().unwrap() = false;
        }
    }

    /// Fails the test if written or flushed while the bar is drawn.
    struct Checked(SharedBuf, Arc<Bar>);

    impl Write for Checked {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            assert!(*self.1.suspended.lock().unwrap(), "written over the bar");
            self.0.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_lines_are_written_with_the_bar_suspended() {
        let bar = Arc::new(Bar {
            suspended: Mutex::new(false),
            suspensions: AtomicU64::new(0),
        });
        let buf = SharedBuf::default();
        let sink = TextSink::new(
            "stdout",
            Checked(buf.clone(), bar.clone()),
            groups(),
            Some(bar.clone()),
        );
        let msgs = vec![
            Message::Incident(incident(EventKind::Start, 1)),
            Message::Incident(incident(EventKind::End, 1)),
            summary(),
        ];
        let done = run(Box::new(sink), msgs);
        assert!(done.errors.is_empty());
        assert_eq!(bar.suspensions.load(Ordering::Relaxed), 3);
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("ATTACK START #1 203.0.113.10 (hosting)"),
            "{text}"
        );
        assert!(lines[1].contains("ATTACK END #1"), "{text}");
        assert_eq!(lines[2], "surgewatch summary");
        assert!(text.ends_with('\n'));
    }

    /// stdout closed under us (`surgewatch ... | head -1`).
    struct Epipe;
    impl Write for Epipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn a_closed_stdout_is_an_error_not_a_panic() {
        for sink in [
            Box::new(JsonLinesSink::new("stdout", Epipe, groups())) as Box<dyn Sink>,
            Box::new(TextSink::new("stdout", Epipe, groups(), None)),
        ] {
            let msgs = (0..10)
                .map(|i| Message::Incident(incident(EventKind::Update, i)))
                .chain([summary()])
                .collect();
            let done = run(sink, msgs);
            assert_eq!(done.errors.len(), 1);
            assert!(done.errors[0].is_broken_pipe());
            assert_eq!(done.stats[0].queued, 11);
        }
    }
}
