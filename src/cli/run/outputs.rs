//! What `flatline run` writes for each scenario besides the live view: the
//! JSON and HTML reports, how its commands ended, and the snapshot check.

use super::{RunArgs, Sink};
use crate::cli::write_file;
use crate::report::{self, Report};
use crate::scenario::Scenario;
use std::path::{Path, PathBuf};

/// Where the report of `scenario` goes when several scenarios share `--report`.
pub(super) fn per_scenario(path: &Path, scenario: &str, many: bool) -> PathBuf {
    if !many {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("report");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("json");
    path.with_file_name(format!("{stem}.{scenario}.{ext}"))
}

pub(super) fn write_outputs(
    args: &RunArgs,
    report: &Report,
    sc: &Scenario,
    many: bool,
) -> Result<(), String> {
    if let Some(p) = &args.report {
        write_file(&per_scenario(p, &report.scenario, many), &report.to_json())?;
    }
    if let Some(p) = &args.html {
        write_file(
            &per_scenario(p, &report.scenario, many),
            &report::html::html(report, Some(sc)),
        )?;
    }
    Ok(())
}

/// Say how each command that did not end by being stopped ended (a client
/// that exits early is otherwise only visible as failed expectations).
/// Returns why the run could not be carried out when the shell could not
/// find or execute a command (status 127 or 126).
pub(super) fn report_commands(report: &Report, sink: &mut Sink) -> Option<String> {
    let mut cannot = None;
    for c in &report.commands {
        let how = match (c.exit, c.signal) {
            (Some(0), _) | (_, Some(libc::SIGTERM | libc::SIGKILL)) => continue,
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            (None, None) => "ended in an unknown way".to_string(),
        };
        let mut msg = format!("{} command `{}` {how}", c.role, c.command);
        let tail: Vec<&str> = c.output_tail.lines().collect();
        let last = &tail[tail.len().saturating_sub(10)..];
        if last.is_empty() {
            msg.push_str(" (no output)");
        } else {
            msg.push_str("; its last output:");
            for l in last {
                msg.push_str("\n    ");
                msg.push_str(l);
            }
        }
        sink.say(format!("flatline: `{}`: {msg}", report.scenario));
        if matches!(c.exit, Some(126 | 127)) && cannot.is_none() {
            cannot = Some(format!(
                "cannot start the {} command `{}` ({how}: not found or not executable)",
                c.role, c.command
            ));
        }
    }
    cannot
}

/// Compare (or update) the stored transcript; `Err` carries the readable diff.
pub(super) fn check_snapshot(
    args: &RunArgs,
    report: &Report,
    sink: &mut Sink,
) -> Result<(), String> {
    let Some(dir) = &args.snapshot else {
        return Ok(());
    };
    let path = dir.join(format!("{}.transcript", report.scenario));
    let new = report.transcript().to_text();
    if args.update_snapshots {
        write_file(&path, &new)?;
        sink.say(format!("flatline: wrote {}", path.display()));
        return Ok(());
    }
    match std::fs::read_to_string(&path) {
        Ok(old) if old == new => Ok(()),
        Ok(old) => Err(format!(
            "snapshot {} differs (run with --update-snapshots to accept):\n{}",
            path.display(),
            report::transcript::diff(&old, &new)
        )),
        Err(_) => {
            write_file(&path, &new)?;
            sink.say(format!("flatline: new snapshot {}", path.display()));
            Ok(())
        }
    }
}
