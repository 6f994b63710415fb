//! The manuals: `orc man DIR` writes a section-1 page per command (clap_mangen's
//! NAME, SYNOPSIS, DESCRIPTION and OPTIONS, then EXIT STATUS, ENVIRONMENT,
//! FILES, EXAMPLES and SEE ALSO written here) and the section-5 pages of
//! orc's file formats: `orc.json(5)`, `orc-state-registry(5)` and
//! `orc-report(5)`.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, PERSONALITIES};
use crate::error::{Error, Result};

/// One block of a section.
pub(crate) enum Block<'a> {
    /// A paragraph.
    P(&'a str),
    /// A tagged paragraph (`.TP`): the tag in bold.
    Item(&'a str, &'a str),
    /// Literal lines (`.nf`).
    Code(&'a str),
}

pub(crate) use Block::{Code, Item, P};

/// Escapes text for roff: backslashes, hyphens (so they are not hyphenation points
/// and copy as ASCII), and a leading `.` or `'` (a control line otherwise).
fn esc(s: &str) -> String {
    let body = s.replace('\\', "\\e").replace('-', "\\-");
    body.lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn section(out: &mut String, title: &str, blocks: &[Block]) {
    out.push_str(&format!(".SH \"{title}\"\n"));
    for b in blocks {
        match b {
            P(t) => out.push_str(&format!(".PP\n{}\n", esc(t))),
            Item(tag, t) => out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", esc(tag), esc(t))),
            Code(t) => out.push_str(&format!(".PP\n.RS 4\n.nf\n{}\n.fi\n.RE\n", esc(t))),
        }
    }
}

/// The exit codes, per page.
fn exit_status(page: &str) -> Vec<Block<'static>> {
    match page {
        "orc-status" => vec![
            Item("0", "the last run succeeded"),
            Item(
                "1",
                "the last run failed, timed out, was interrupted or crashed",
            ),
            Item("2", "invalid input (arguments, config)"),
            Item("3", "orc never ran on this root"),
        ],
        "orc-list" | "orc-state-list" | "orc-containers-list" => vec![
            Item("0", "listed"),
            Item(
                "2",
                "invalid input (arguments, config, registry, spec, an unsafe script)",
            ),
        ],
        "dib-run-parts" => vec![
            Item("0", "every script succeeded (or --list printed them)"),
            Item(
                "N",
                "the exit code of the first script that failed (128 + signal if killed)",
            ),
            Item("2", "invalid input"),
        ],
        _ => vec![
            Item("0", "success"),
            Item("1", "a step failed or timed out"),
            Item(
                "2",
                "invalid input (arguments, config, spec, registry, an unsafe script): nothing was changed",
            ),
            Item("11", "another run holds the lock"),
            Item(
                "77",
                "a writing command run by a user other than root: refused before anything was done",
            ),
            Item(
                "130, 143",
                "interrupted by SIGINT or SIGTERM (forwarded to the running step and waited for)",
            ),
        ],
    }
}

fn environment() -> Vec<Block<'static>> {
    vec![
        Item(
            "ORC_ROOT",
            "the root every system path is resolved under (as --root); default /",
        ),
        Item(
            "OS_REFRESH_CONFIG_BASE_DIR",
            "the base dir of the phase directories, used as given (not under the root)",
        ),
        Item(
            "RUN_PARTS_REGEX",
            "the pattern a script's name must match; default ^[0-9A-Za-z_-]+$",
        ),
        Item(
            "RUST_LOG",
            "the log level (error, warn, info, debug, trace), as -v and -q set it",
        ),
        Item(
            "JOURNAL_STREAM",
            "set by systemd: when it names orc's stderr, log lines go to the journal by its native protocol with the fields ORC_RUN_ID, ORC_PHASE, ORC_STEP and a MESSAGE_ID for run start (b22682ea496b4faeacae54eeb9bbf50f), run end (3afb5522721943a9a4b60d3e0763b0b2), run failure (a77d075d83b94b25aa5204c9b1d6944d) and step failure (75c7e34b954f476691c6041a24c8cb5e); otherwise plain lines with a <N> priority prefix",
        ),
        Item(
            "NOTIFY_SOCKET",
            "set by systemd: orc sends STATUS=, EXTEND_TIMEOUT_USEC= and READY=1; never passed to scripts",
        ),
        P(
            "Scripts get the inherited environment plus ORC_PHASE, ORC_RUN_ID, ORC_ROOT and ORC_SCRIPT; error.d scripts also ORC_FAILED_PHASE, ORC_FAILED_STEP and ORC_FAILED_EXIT.",
        ),
    ]
}

fn files() -> Vec<Block<'static>> {
    vec![
        P("All under the root; the config may move each of them."),
        Item("/etc/orc/orc.json", "the optional config, see orc.json(5)"),
        Item(
            "/usr/libexec/os-refresh-config/PHASE.d/",
            "the scripts of each phase (pre-configure, configure, migration and migrations, post-configure, error)",
        ),
        Item(
            "/usr/libexec/os-refresh-config/environment.d/",
            "files sourced by bash before the first phase",
        ),
        Item(
            "/run/os-refresh-config.lock",
            "the lock every writing command takes; names its holder while held",
        ),
        Item(
            "/var/lib/orc/runs/RUN_ID.json, /var/lib/orc/last-run.json",
            "the run reports, see orc-report(5)",
        ),
        Item(
            "/var/lib/use-ephemeral/stateful-paths",
            "the state registry, see orc-state-registry(5)",
        ),
        Item(
            "/var/lib/use-ephemeral/, /mnt/state/",
            "the pristine copies and the state root",
        ),
        Item(
            "/etc/orc/containers.d/*.json, /etc/orc/networks.d/*.json",
            "the box's container and network specs",
        ),
        Item(
            "METRICS_DIR/orc.prom",
            "the node-exporter textfile written after each run when metrics.textfile_dir is set",
        ),
    ]
}

/// The examples of one page (by its name: `orc-run`, `dib-run-parts`, ...).
fn examples(page: &str) -> &'static str {
    match page {
        "orc" | "orc-run" => {
            "orc run                         # one full refresh, as systemd runs it at boot\n\
             orc run --only configure        # one phase alone (no containers step)\n\
             orc run --wait=60 --timeout=900 # wait up to a minute for the lock, 15 min in all\n\
             orc --root /tmp/img run --skip-containers   # a tree being built"
        }
        "orc-list" => {
            "orc list                 # every step in run order, every skipped file and why\n\
                       orc list --json | jq '.steps[].name'"
        }
        "orc-status" => {
            "orc status               # the last run: steps, times, state, containers\n\
                         orc status --json | jq -r .result\n\
                         orc status --wait        # after the run that holds the lock ends"
        }
        "orc-state" | "orc-state-register" => {
            "orc state register /var/lib/mysql                # at image build time\n\
             orc state register --leave-symlink /etc/ssh/keys"
        }
        "orc-state-finalise" => "orc state finalise       # last step of an image build",
        "orc-state-seed" => "orc state seed           # the boot step alone",
        "orc-state-list" => "orc state list --json",
        "orc-containers" | "orc-containers-reconcile" => {
            "orc containers reconcile # converge the box's containers alone"
        }
        "orc-containers-list" => "orc containers list --json",
        "os-refresh-config" => {
            "os-refresh-config                    # as upstream: every phase\n\
                                os-refresh-config --print-phases"
        }
        "dib-run-parts" => {
            "dib-run-parts --list /usr/libexec/os-refresh-config/configure.d\n\
                            dib-run-parts /usr/libexec/os-refresh-config/configure.d"
        }
        "register-state-path" => "register-state-path --leave-symlink /var/lib/mysql",
        _ => "orc --help",
    }
}

/// The sections orc adds to a section-1 page.
fn extra_sections(page: &str) -> String {
    let mut s = String::new();
    section(&mut s, "EXIT STATUS", &exit_status(page));
    section(&mut s, "ENVIRONMENT", &environment());
    section(&mut s, "FILES", &files());
    section(&mut s, "EXAMPLES", &[Code(examples(page))]);
    section(
        &mut s,
        "SEE ALSO",
        &[P(
            "orc(1), orc-run(1), orc-status(1), orc.json(5), orc-state-registry(5), orc-report(5), systemctl(1), journalctl(1)",
        )],
    );
    s
}

/// A section-1 page: clap_mangen's sections, then orc's.
fn page(cmd: clap::Command, name: &str) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.get_subcommands().any(|c| !c.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    out.write_all(extra_sections(name).as_bytes())?;
    if cmd.get_version().is_some() || cmd.get_long_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    Ok(out)
}

/// Every section-1 page: (file name, roff).
fn pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: &clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, out)?;
        }
        let name = cmd
            .get_display_name()
            .unwrap_or_else(|| cmd.get_name())
            .to_string();
        out.push((format!("{name}.1"), page(cmd.clone(), &name)?));
        Ok(())
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, &mut out)?;
    for name in PERSONALITIES {
        let sub = cmd
            .find_subcommand(name)
            .expect("every personality is a subcommand")
            .clone()
            .name(*name)
            .display_name(*name)
            .bin_name(*name)
            .hide(false);
        out.push((format!("{name}.1"), page(sub, name)?));
    }
    Ok(out)
}

/// `orc man DIR`: every section-1 and section-5 page.
pub fn write(dir: &Path) -> Result<i32> {
    let fail = |e: std::io::Error| Error::Io {
        what: format!("writing man pages to {}", dir.display()),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut all = pages().map_err(fail)?;
    all.extend(
        crate::manual5::pages()
            .into_iter()
            .map(|(n, t)| (n, t.into_bytes())),
    );
    for (name, text) in all {
        std::fs::write(dir.join(name), text).map_err(fail)?;
    }
    Ok(0)
}

/// A section-5 page from its parts (used by [`crate::manual5`]).
pub(crate) fn format_page(name: &str, summary: &str, sections: &[(&str, Vec<Block>)]) -> String {
    let mut s = format!(
        ".TH {} 5 \"\" \"orc {}\" \"File Formats\"\n",
        name,
        env!("CARGO_PKG_VERSION")
    );
    section(&mut s, "NAME", &[P(&format!("{name} - {summary}"))]);
    for (title, blocks) in sections {
        section(&mut s, title, blocks);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_escapes_hyphens_backslashes_and_control_lines() {
        assert_eq!(esc("a-b\\c"), "a\\-b\\ec");
        assert_eq!(esc(".x\n'y\nz"), "\\&.x\n\\&'y\nz");
    }

    #[test]
    fn every_page_has_the_sections() {
        for (name, text) in pages().unwrap() {
            let t = String::from_utf8(text).unwrap();
            for s in ["EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES"] {
                assert!(t.contains(&format!(".SH \"{s}\"")), "{name}: {s}");
            }
        }
    }
}
