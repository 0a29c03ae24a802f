//! The per-frame log on disk: [`EventSink`].

use super::lock;
use crate::events::Event;
use std::io::Write;
use std::path::Path;
use std::sync::{mpsc as std_mpsc, Mutex};

/// Where the full per-frame log goes (`--events FILE.jsonl`): one JSON line
/// per event, written by a thread of its own so that emitting never waits
/// for the disk.
#[derive(Debug)]
pub struct EventSink {
    tx: std_mpsc::Sender<Option<String>>,
    writer: Mutex<Option<std::thread::JoinHandle<std::io::Result<()>>>>,
}

impl EventSink {
    /// Append to `path` (created if missing).
    pub fn append(path: &Path) -> std::io::Result<EventSink> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = std_mpsc::channel::<Option<String>>();
        let writer = std::thread::Builder::new()
            .name("flatline-events".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::new(file);
                while let Ok(Some(line)) = rx.recv() {
                    out.write_all(line.as_bytes())?;
                }
                out.flush()
            })?;
        Ok(EventSink {
            tx,
            writer: Mutex::new(Some(writer)),
        })
    }

    pub(super) fn write(&self, ev: &Event) {
        if let Ok(mut line) = serde_json::to_string(ev) {
            line.push('\n');
            let _ = self.tx.send(Some(line));
        }
    }

    /// Write what is queued and close the file; later events are not written.
    pub(super) fn finish(&self) -> std::io::Result<()> {
        let _ = self.tx.send(None);
        let handle = lock(&self.writer).take();
        match handle.map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("the events writer panicked")),
            None => Ok(()),
        }
    }
}
