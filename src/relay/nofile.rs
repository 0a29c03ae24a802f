//! The open-file limit: every relayed connection holds two sockets, so the
//! default soft limit of many systems (1,024) caps a relay at about 500
//! connections. [`raise`] lifts the soft limit to the hard one at start;
//! [`NoFile::warning`] says clearly when even that is too low.

/// The open-file limit in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFile {
    /// The soft limit (what the process may use).
    pub soft: u64,
    /// The hard limit (the most an unprivileged process may raise it to).
    pub hard: u64,
}

/// Descriptors kept aside for listeners, files, commands and the runtime.
const SPARE: u64 = 64;

impl NoFile {
    /// How many connections (two sockets each) the soft limit allows.
    pub fn max_connections(self) -> u64 {
        self.soft.saturating_sub(SPARE) / 2
    }

    /// A warning when fewer than `wanted` connections fit, naming the limit
    /// and how to raise it.
    pub fn warning(self, wanted: u64) -> Option<String> {
        let fits = self.max_connections();
        (fits < wanted).then(|| {
            format!(
                "the open-file limit is {} (hard limit {}), enough for about {fits} concurrent connections (two sockets each); for more, raise the hard limit (`ulimit -Hn`, /etc/security/limits.conf, or LimitNOFILE= for a systemd service)",
                self.soft, self.hard
            )
        })
    }
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; the limit now in force.
pub fn raise() -> std::io::Result<NoFile> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if r.rlim_cur < r.rlim_max {
        let want = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            r = want;
        }
    }
    Ok(NoFile {
        soft: r.rlim_cur,
        hard: r.rlim_max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_to_the_hard_limit_and_counts_two_sockets_per_connection() {
        let l = raise().expect("getrlimit");
        assert_eq!(
            l.soft, l.hard,
            "raising the soft limit to the hard one is always allowed"
        );
        let small = NoFile {
            soft: 1024,
            hard: 1024,
        };
        assert_eq!(small.max_connections(), 480);
        let w = small.warning(10_000).expect("too low");
        assert!(w.contains("1024") && w.contains("about 480"), "{w}");
        assert!(NoFile {
            soft: 1 << 20,
            hard: 1 << 20
        }
        .warning(10_000)
        .is_none());
    }
}
