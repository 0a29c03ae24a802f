//! The two ends of a run: the upstream (a `--server-cmd`, an external
//! server, or the built-in demo server) and the clients (`--client-cmd`
//! processes, built-in demo clients, or whoever connects).

use super::proc::{push_tail, tail_text, wait_for_tcp, Proc, Tail, TERM_GRACE};
use super::setup::RunTls;
use super::{RunError, RunOptions};
use crate::events::{EventKind, EventLog};
use crate::netns::Netns;
use crate::peers::client::{run_client, DemoClientOpts};
use crate::peers::server::{spawn_demo_server, DemoServerHandle, DemoServerOpts};
use crate::relay::Upstream;
use crate::report::CommandOutcome;
use crate::tls::{ListenCert, ServerTls, UpstreamTrust};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The query parameter that tells the clients of a many-client run apart:
/// `FLATLINE_URL` carries `flatline_client=<index>` when there is more than
/// one client, and the relay logs the request target with it.
pub const CLIENT_QUERY: &str = "flatline_client";

/// The URL client `index` of `clients` connects to: the relay's URL, with
/// `flatline_client=<index>` added to its query when there are several.
pub fn client_url(url: &str, index: usize, clients: usize) -> String {
    if clients <= 1 {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{CLIENT_QUERY}={index}")
}

/// The server side of a run.
pub(super) enum ServerSide {
    Cmd(Box<Proc>),
    Demo(DemoServerHandle),
    External,
}

impl ServerSide {
    /// Start (or wait for) the upstream; returns its URL.
    pub(super) async fn start(
        upstream_url: Option<&str>,
        opts: &RunOptions,
        netns: Option<&Netns>,
        tls: &mut RunTls,
    ) -> Result<(String, ServerSide), RunError> {
        let ns = netns.and_then(Netns::server_path);
        let mut server_proc = match &opts.server_cmd {
            Some(cmd) => Some(Proc::spawn("server", cmd, &tls.env(false), ns.as_deref())?),
            None => None,
        };
        let sockets = netns.map(Netns::sockets);
        let Some(u) = upstream_url else {
            if let Some(p) = server_proc.take() {
                p.stop().await;
                return Err(RunError::Setup(
                    "--server-cmd needs --upstream (or `upstream:` in the scenario) to know where the server listens".into(),
                ));
            }
            // With a listener certificate the demo server speaks TLS too,
            // with a certificate of its own for 127.0.0.1 that the relay trusts.
            if tls.listen.is_some() {
                let demo = ServerTls::load(&ListenCert::Auto)?;
                tls.upstream_trust = UpstreamTrust::CaFile(demo.cert_path.clone());
                tls.demo = Some(demo);
            }
            let demo = DemoServerOpts {
                tls: tls.demo.as_ref().map(|t| t.config.clone()),
                ..DemoServerOpts::default()
            };
            let scheme = if tls.demo.is_some() { "wss" } else { "ws" };
            let (addr, handle) = spawn_demo_server(demo)
                .await
                .map_err(|e| RunError::Setup(format!("cannot start the demo server: {e}")))?;
            return Ok((format!("{scheme}://{addr}/feed"), ServerSide::Demo(handle)));
        };
        let authority = Upstream::parse(u)?.authority();
        let waited = tokio::select! {
            r = wait_for_tcp(&authority, &mut server_proc, sockets.as_ref()) => r,
            _ = opts.interrupt.cancelled() => Err(RunError::Setup(format!(
                "interrupted while waiting for the upstream {authority} to accept TCP"
            ))),
        };
        if let Err(e) = waited {
            if let Some(p) = server_proc {
                p.stop().await;
            }
            return Err(e);
        }
        let side = match server_proc {
            Some(p) => ServerSide::Cmd(Box::new(p)),
            None => ServerSide::External,
        };
        Ok((u.to_string(), side))
    }

    /// Stop it; a server command's outcome.
    pub(super) async fn stop(self) -> Option<CommandOutcome> {
        match self {
            ServerSide::Cmd(p) => Some(p.stop().await),
            ServerSide::Demo(h) => {
                let _ = h.stop().await;
                None
            }
            ServerSide::External => None,
        }
    }
}

/// The built-in demo clients of a run, sharing one stop token and one
/// output tail (lines prefixed with the client's index when there are several).
pub(super) struct DemoClients {
    stop: CancellationToken,
    tasks: JoinSet<()>,
    tail: Tail,
    args: String,
    count: usize,
}

/// The client side of a run.
pub(super) enum Clients {
    /// `--client-cmd` processes, one per client, with whether each exited.
    Cmds(Vec<(Proc, bool)>),
    Demo(DemoClients),
    Nobody,
}

impl Clients {
    /// Start `count` clients toward the relay's `url`: the client command
    /// (each with `FLATLINE_URL` and `FLATLINE_CLIENT`), the demo client
    /// (`demo` parsed from `args`, jitter seeded by the seed plus the
    /// index), or nobody.
    pub(super) async fn start(
        opts: &RunOptions,
        demo: Option<DemoClientOpts>,
        args: &[String],
        (url, count): (&str, usize),
        netns: Option<&std::path::Path>,
        tls: Option<&ServerTls>,
    ) -> Result<Clients, RunError> {
        if let Some(cmd) = &opts.client_cmd {
            let mut procs = Vec::with_capacity(count);
            for i in 0..count {
                let mut env = vec![
                    ("FLATLINE_URL", client_url(url, i, count)),
                    ("FLATLINE_CLIENT", i.to_string()),
                ];
                env.extend(tls.map(ServerTls::client_env).unwrap_or_default());
                match Proc::spawn("client", cmd, &env, netns) {
                    Ok(p) => procs.push((p, false)),
                    Err(e) => {
                        // Those started are stopped before the error returns.
                        Clients::Cmds(procs).stop().await;
                        return Err(e);
                    }
                }
            }
            return Ok(Clients::Cmds(procs));
        }
        let Some(copts) = demo else {
            return Ok(Clients::Nobody);
        };
        let stop = CancellationToken::new();
        let tail: Tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut tasks = JoinSet::new();
        for i in 0..count {
            let mut o = copts.clone();
            o.url = Some(client_url(url, i, count));
            if let Some(t) = tls {
                o.ca = Some(t.cert_path.clone());
            }
            o.seed = copts.seed.wrapping_add(i as u64);
            let (t, s) = (tail.clone(), stop.clone());
            let prefix = if count > 1 {
                format!("[client {i}] ")
            } else {
                String::new()
            };
            tasks.spawn(async move {
                let r =
                    run_client(o, s, |line: &str| push_tail(&t, format!("{prefix}{line}"))).await;
                if let Err(e) = r {
                    push_tail(&t, format!("{prefix}demo client error: {e}"));
                }
            });
        }
        Ok(Clients::Demo(DemoClients {
            stop,
            tasks,
            tail,
            args: args.join(" "),
            count,
        }))
    }

    /// Notice client commands that exited by themselves (logged as a note;
    /// returns the warnings for the report).
    pub(super) fn poll_exits(&mut self, log: &EventLog) -> Vec<String> {
        let Clients::Cmds(procs) = self else {
            return Vec::new();
        };
        let many = procs.len() > 1;
        let mut warnings = Vec::new();
        for (i, (p, exited)) in procs.iter_mut().enumerate() {
            if *exited {
                continue;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                *exited = true;
                let who = if many {
                    format!("the client command (client {i})")
                } else {
                    "the client command".to_string()
                };
                log.emit(
                    None,
                    EventKind::Note {
                        text: format!("{who} exited by itself ({status})"),
                    },
                );
                warnings.push(format!(
                    "{who} exited by itself at t={:.2} s ({status})",
                    log.now().as_secs_f64()
                ));
            }
        }
        warnings
    }

    /// Stop every client; their outcomes for the report.
    pub(super) async fn stop(self) -> Vec<CommandOutcome> {
        match self {
            Clients::Cmds(procs) => {
                futures_util::future::join_all(procs.into_iter().map(|(p, _)| p.stop())).await
            }
            Clients::Demo(d) => vec![d.stop().await],
            Clients::Nobody => Vec::new(),
        }
    }
}

impl DemoClients {
    async fn stop(mut self) -> CommandOutcome {
        self.stop.cancel();
        // The in-process clients have no exit status: 0 when every one ended
        // by itself or on being stopped, none if one had to be abandoned.
        let all = async {
            let mut ok = true;
            while let Some(r) = self.tasks.join_next().await {
                ok &= r.is_ok();
            }
            ok
        };
        let ended = matches!(tokio::time::timeout(TERM_GRACE, all).await, Ok(true));
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let who = if self.count > 1 {
            format!("{} built-in demo clients", self.count)
        } else {
            "built-in demo client".to_string()
        };
        CommandOutcome {
            role: "client".into(),
            command: format!("{who} {}", self.args).trim().to_string(),
            exit: ended.then_some(0),
            signal: None,
            output_tail: tail_text(&self.tail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_urls_carry_the_index_only_when_there_are_several() {
        let u = "ws://127.0.0.1:9000/feed";
        assert_eq!(client_url(u, 0, 1), u);
        assert_eq!(
            client_url(u, 3, 5),
            "ws://127.0.0.1:9000/feed?flatline_client=3"
        );
        assert_eq!(
            client_url("ws://h:1/f?token=a", 1, 2),
            "ws://h:1/f?token=a&flatline_client=1"
        );
        let back = crate::expect::scope::client_in_target(&client_url("/f?token=a", 7, 9));
        assert_eq!(back, Some(7));
    }
}
