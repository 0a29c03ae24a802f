//! Network namespaces and veth links, made with `ip` and entered with
//! `setns(2)` from a thread of their own (a socket stays in the namespace it
//! was made in). Every name starts with [`PREFIX`] and carries the creating
//! process's pid and start time, so that a namespace left by a killed run can
//! be recognised and removed by the next one, and nothing else is touched.

use super::NetnsError;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Every namespace flatline makes is named `flatline-PID.START.N-ROLE`.
pub const PREFIX: &str = "flatline-";
/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A process's start time (clock ticks since boot), to tell a live owner
/// from a recycled pid.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields count from
    // the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The name stem of this process's next set of namespaces.
pub fn new_stem() -> String {
    let pid = std::process::id();
    let start = start_time(pid).unwrap_or(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{pid}.{start}.{n}")
}

/// Whether a namespace name belongs to a process that is gone.
fn is_stale(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let mut parts = rest.split(['.', '-']);
    let (Some(pid), Some(start)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    start_time(pid) != Some(start)
}

/// Names of flatline's namespaces that exist now.
pub fn list_ours() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut v: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    v.sort();
    v
}

/// Remove namespaces left by runs whose process is gone, and end what those
/// runs started in them (their commands were orphaned); their names.
pub fn clean_stale() -> Vec<String> {
    let stale: Vec<String> = list_ours().into_iter().filter(|n| is_stale(n)).collect();
    for n in &stale {
        for pid in pids_in(n) {
            // SAFETY: kill has no memory preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        delete(n);
    }
    stale
}

/// The processes inside a namespace (`ip netns pids`).
fn pids_in(name: &str) -> Vec<i32> {
    Command::new("ip")
        .args(["netns", "pids", name])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Run `ip ARGS`; the error names the command and its output.
pub fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NetnsError::Setup(format!("cannot run `ip`: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Setup(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Delete a namespace (its veth ends go with it). Errors are ignored: this
/// is clean-up.
pub fn delete(name: &str) {
    let _ = ip(&["netns", "delete", name]);
}

/// One named namespace, deleted on drop.
#[derive(Debug)]
pub struct Ns {
    name: String,
}

impl Ns {
    /// Create it, with `lo` up.
    pub fn create(name: String) -> Result<Ns, NetnsError> {
        ip(&["netns", "add", &name])?;
        let ns = Ns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file that names it (for `setns`).
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Run `f` on a thread inside this namespace.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let path = self.path();
        std::thread::spawn(move || {
            enter(&path)?;
            f()
        })
        .join()
        .map_err(|_| std::io::Error::other("namespace thread panicked"))?
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        delete(&self.name);
    }
}

/// Move the calling thread into the namespace at `path`.
pub fn enter(path: &Path) -> std::io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: setns on a valid fd; affects only the calling thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Join `a` (interface `a_if`, address `a_addr`) to `b` (`b_if`, `b_addr`)
/// with a veth pair made directly in the two namespaces.
pub fn link(
    a: &Ns,
    a_if: &str,
    a_addr: &str,
    b: &Ns,
    b_if: &str,
    b_addr: &str,
) -> Result<(), NetnsError> {
    ip(&[
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    for (ns, ifname, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        ip(&["-n", ns.name(), "addr", "add", addr, "dev", ifname])?;
        ip(&["-n", ns.name(), "link", "set", ifname, "up"])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_live_processes_are_not_stale() {
        let stem = new_stem();
        assert!(!is_stale(&format!("{stem}-relay")));
        // pid 0 never has a /proc entry.
        assert!(is_stale("flatline-0.1.0-relay"));
        assert!(!is_stale("other-1.2.3-relay"));
        assert!(!is_stale("flatline-x"));
    }
}
