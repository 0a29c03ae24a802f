//! A bench's helper process: the bench runs itself with arguments that make
//! it serve something (a relay, an upstream), which prints `ADDR host:port`
//! and then answers `rss` on stdin with `RSS <KiB>`, so memory is measured
//! in a process of its own.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// This process's resident set (VmRSS), in KiB.
pub fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Child side: print the address, then answer `rss` until stdin closes.
pub async fn serve_rss(addr: SocketAddr) -> Res<()> {
    println!("ADDR {addr}");
    std::io::stdout().flush()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(cmd) = rx.recv().await {
        if cmd.trim() == "rss" {
            println!("RSS {}", vm_rss_kib());
            std::io::stdout().flush()?;
        }
    }
    Ok(())
}

/// Parent side: a helper process, killed when dropped.
pub struct Proc {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
    /// What it serves on.
    pub addr: SocketAddr,
}

impl Proc {
    /// Run this bench binary with `args`; wait for its address.
    pub fn spawn(args: &[&str]) -> Res<Proc> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        out.read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("ADDR ")
            .ok_or(format!("child said {line:?}"))?
            .parse()?;
        Ok(Proc {
            child,
            stdin,
            out,
            addr,
        })
    }

    /// Its resident set, in KiB.
    pub fn rss(&mut self) -> Res<u64> {
        writeln!(self.stdin, "rss")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        Ok(line
            .trim()
            .strip_prefix("RSS ")
            .ok_or(format!("child said {line:?}"))?
            .parse()?)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
