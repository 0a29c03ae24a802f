//! Child processes of a run (`--server-cmd`, `--client-cmd`): each in a
//! process group of its own, with the tail of its output kept for the report.

use super::RunError;
use crate::relay::Sockets;
use crate::report::CommandOutcome;
use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// How long `--server-cmd`'s upstream may take to accept TCP.
const UPSTREAM_WAIT: Duration = Duration::from_secs(15);
/// How long a command gets between SIGTERM and SIGKILL.
pub(super) const TERM_GRACE: Duration = Duration::from_secs(3);
/// Lines of command output kept for the report.
const TAIL_LINES: usize = 40;
/// How long the output of a command that ended may take to be read to its
/// end (a grandchild that kept the pipe open is not waited for longer).
const DRAIN: Duration = Duration::from_millis(500);

/// The last lines of a command's (or demo client's) output.
pub(super) type Tail = Arc<Mutex<VecDeque<String>>>;

pub(super) fn push_tail(tail: &Mutex<VecDeque<String>>, line: String) {
    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
    if t.len() == TAIL_LINES {
        t.pop_front();
    }
    t.push_back(line);
}

pub(super) fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    let t = tail.lock().unwrap_or_else(|p| p.into_inner());
    t.iter().cloned().collect::<Vec<_>>().join("\n")
}

/// A child process in a process group of its own, with its output tail.
pub(super) struct Proc {
    /// The process group (the shell's pid), kept after the shell is reaped
    /// so that what is left of the group can still be killed.
    pgid: Option<i32>,
    role: &'static str,
    command: String,
    pub(super) child: Child,
    tail: Tail,
    /// The tasks reading its stdout and stderr into `tail`.
    readers: Vec<JoinHandle<()>>,
}

fn keep_lines(out: impl AsyncRead + Unpin + Send + 'static, tail: Tail) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            push_tail(&tail, l);
        }
    })
}

impl Proc {
    /// `sh -c cmd` with `env` added to the caller's environment, in the
    /// network namespace at `netns` if given.
    pub(super) fn spawn(
        role: &'static str,
        cmd: &str,
        env: &[(&str, String)],
        netns: Option<&std::path::Path>,
    ) -> Result<Proc, RunError> {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for (k, v) in env {
            c.env(k, v);
        }
        let err = |err| RunError::Command {
            role,
            cmd: cmd.to_string(),
            err,
        };
        if let Some(path) = netns {
            // SAFETY: the hook only calls setns(2).
            unsafe {
                c.pre_exec(crate::netns::enter_in_child(path).map_err(err)?);
            }
        }
        let mut child = c.spawn().map_err(err)?;
        let tail: Tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(keep_lines(out, tail.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(keep_lines(err, tail.clone()));
        }
        Ok(Proc {
            pgid: child.id().map(|p| p as i32),
            role,
            command: cmd.to_string(),
            child,
            tail,
            readers,
        })
    }

    fn signal(&self, sig: i32) {
        if let Some(pgid) = self.pgid {
            // The whole process group: grandchildren (a browser under a
            // driver script) go too.
            unsafe {
                libc::kill(-pgid, sig);
            }
        }
    }

    /// SIGTERM, then SIGKILL after the grace period.
    pub(super) async fn stop(mut self) -> CommandOutcome {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                self.signal(libc::SIGTERM);
                match tokio::time::timeout(TERM_GRACE, self.child.wait()).await {
                    Ok(Ok(s)) => Some(s),
                    _ => {
                        self.signal(libc::SIGKILL);
                        self.child.wait().await.ok()
                    }
                }
            }
        };
        // Whatever is left of the group.
        self.signal(libc::SIGKILL);
        use std::os::unix::process::ExitStatusExt;
        CommandOutcome {
            role: self.role.to_string(),
            command: self.command.clone(),
            exit: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            output_tail: self.final_output().await,
        }
    }

    /// Its whole output, once it has ended: the pipes are read to their end
    /// first (for up to [`DRAIN`]). The process exits before its last
    /// lines are read, so the tail taken at once can miss them.
    pub(super) async fn final_output(&mut self) -> String {
        let readers = std::mem::take(&mut self.readers);
        let _ = tokio::time::timeout(DRAIN, async {
            for r in readers {
                let _ = r.await;
            }
        })
        .await;
        tail_text(&self.tail)
    }
}

/// Wait (bounded) until `addr` accepts TCP; fail early when the server
/// command that should listen there exits.
pub(super) async fn wait_for_tcp(
    addr: &str,
    server: &mut Option<Proc>,
    sockets: Option<&Arc<dyn Sockets>>,
) -> Result<(), RunError> {
    let deadline = tokio::time::Instant::now() + UPSTREAM_WAIT;
    loop {
        let connected = match sockets {
            None => tokio::net::TcpStream::connect(addr).await.is_ok(),
            Some(s) => s.connect(0, addr).await.is_ok(),
        };
        if connected {
            return Ok(());
        }
        if let Some(p) = server.as_mut() {
            if let Ok(Some(status)) = p.child.try_wait() {
                return Err(RunError::UpstreamUnreachable {
                    addr: addr.to_string(),
                    secs: UPSTREAM_WAIT.as_secs(),
                    why: format!(
                        "; the server command exited early ({status}): {}",
                        p.final_output().await
                    ),
                });
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RunError::UpstreamUnreachable {
                addr: addr.to_string(),
                secs: UPSTREAM_WAIT.as_secs(),
                why: String::new(),
            });
        }
        // Polling an external process's port: there is no event to await.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
