//! Readiness: waiting, with a deadline and progress, until a container is
//! healthy (or has completed successfully), as compose's `depends_on`
//! conditions mean it. A container that turns unhealthy or exits fails the
//! wait at once, naming its last health output.

use std::time::{Duration, Instant};

use super::engine::{Engine, Inspected};
use super::spec::Spec;
use crate::config::Engine as Kind;
use crate::error::{Error, Result};
use crate::step::StepCtx;

/// What a container must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Healthy,
    Completed,
}

impl Want {
    fn name(self) -> &'static str {
        match self {
            Want::Healthy => "healthy",
            Want::Completed => "completed",
        }
    }
}

/// Where a container stands against what is wanted (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    Pending(String),
    Failed(String),
}

fn last_check(i: &Inspected) -> String {
    match &i.last_check {
        Some((code, out)) => {
            let out: String = out.trim().chars().take(300).collect();
            let out = out.replace('\n', " / ");
            format!(
                "; last check (exit {code}): {}",
                if out.is_empty() { "(no output)" } else { &out }
            )
        }
        None => String::new(),
    }
}

pub fn verdict(i: &Inspected, want: Want) -> Verdict {
    let exited = matches!(i.status.as_str(), "exited" | "dead" | "stopped");
    match want {
        Want::Completed if exited && i.exit_code == 0 => Verdict::Ready,
        Want::Completed if exited => Verdict::Failed(format!("exited with code {}", i.exit_code)),
        Want::Completed => Verdict::Pending(i.status.clone()),
        Want::Healthy if exited => Verdict::Failed(format!(
            "exited (code {}) before it was healthy{}",
            i.exit_code,
            last_check(i)
        )),
        Want::Healthy => match i.health.as_deref() {
            Some("healthy") => Verdict::Ready,
            Some("unhealthy") => Verdict::Failed(format!("unhealthy{}", last_check(i))),
            Some(s) => Verdict::Pending(format!("{s}{}", last_check(i))),
            None if i.status == "running" => Verdict::Failed("has no healthcheck".into()),
            None => Verdict::Pending(i.status.clone()),
        },
    }
}

/// Why a container just started did not stay up (`None`: it runs, or a one-shot job
/// with restart policy `no` completed). Pure.
pub fn not_up(i: &Inspected, one_shot: bool) -> Option<String> {
    let exited = matches!(i.status.as_str(), "exited" | "dead" | "stopped");
    let why = if i.error.is_empty() {
        String::new()
    } else {
        format!(": {}", i.error)
    };
    if exited && !(one_shot && i.exit_code == 0) {
        Some(format!("exited (code {}){why}", i.exit_code))
    } else if i.status == "restarting" || i.restarts > 0 {
        Some(format!(
            "keeps exiting (code {}, restarted {} times)",
            i.exit_code, i.restarts
        ))
    } else if !exited && i.status != "running" {
        Some(format!("is {}{why}", i.status))
    } else {
        None
    }
}

/// A container just started, looked at once `settle` later: an error when it exited or
/// restarted meanwhile.
pub fn stays_up(engine: &Engine, ctx: &StepCtx, spec: &Spec, settle: Duration) -> Result<()> {
    let one_shot = spec.restart == super::spec::Restart::No;
    nap(ctx, settle)?;
    match not_up(&engine.inspect(&spec.name)?, one_shot) {
        Some(why) => Err(Error::Failed(format!("{} {why}", spec.name))),
        None => Ok(()),
    }
}

/// How long to wait at most: a healthcheck's own patience (its start period and retries),
/// or ten minutes for a completion; never past the run's deadline.
fn limit(spec: &Spec, want: Want, ctx: &StepCtx, start: Instant) -> Instant {
    let patience = match (want, spec.health()) {
        (Want::Healthy, Some(h)) => h.patience(),
        _ => Duration::from_secs(600),
    };
    let own = start + patience;
    ctx.deadline.map_or(own, |d| d.min(own))
}

/// Sleeps `d`, waking early when orc is asked to stop.
fn nap(ctx: &StepCtx, d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        if let Some(sig) = (ctx.interrupted)() {
            return Err(Error::Interrupted(sig));
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// Waits until `spec`'s container is what `want` says, or fails naming it and why.
pub fn wait(engine: &Engine, ctx: &StepCtx, spec: &Spec, want: Want) -> Result<()> {
    let name = &spec.name;
    let start = Instant::now();
    let until = limit(spec, want, ctx, start);
    let interval = spec
        .health()
        .map_or(Duration::from_secs(30), |h| h.interval());
    let tick = (interval / 4).clamp(Duration::from_millis(100), Duration::from_millis(500));
    // Podman runs checks from systemd timers; where there is no systemd, orc runs them.
    let drive = engine.kind == Kind::Podman && want == Want::Healthy && spec.health().is_some();
    let (mut next_check, mut next_note) = (start + interval, start + Duration::from_secs(2));
    loop {
        let now = Instant::now();
        if drive && now >= next_check {
            engine.healthcheck_run(name)?;
            next_check = now + interval;
        }
        let state = match verdict(&engine.inspect(name)?, want) {
            Verdict::Ready => return Ok(()),
            Verdict::Failed(why) => {
                return Err(Error::Failed(format!(
                    "{name} is not {}: {why}",
                    want.name()
                )));
            }
            Verdict::Pending(s) => s,
        };
        let now = Instant::now();
        if now >= until {
            return Err(Error::Failed(format!(
                "{name} did not become {} within {} s: {state}",
                want.name(),
                (now - start).as_secs()
            )));
        }
        if now >= next_note {
            ctx.progress.status(&format!(
                "containers: waiting for {name} to be {} ({} s)",
                want.name(),
                (now - start).as_secs()
            ));
            ctx.progress.extend(
                until
                    .saturating_duration_since(now)
                    .min(Duration::from_secs(60))
                    + Duration::from_secs(15),
            );
            next_note = now + Duration::from_secs(5);
        }
        nap(ctx, tick)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(status: &str, code: i64, health: Option<&str>, last: Option<(i64, &str)>) -> Inspected {
        Inspected {
            status: status.into(),
            exit_code: code,
            health: health.map(String::from),
            last_check: last.map(|(c, o)| (c, o.to_string())),
            restarts: 0,
            error: String::new(),
        }
    }

    #[test]
    fn a_container_that_exits_or_restarts_is_not_up() {
        assert_eq!(not_up(&i("running", 0, None, None), false), None);
        assert_eq!(not_up(&i("exited", 0, None, None), true), None);
        assert_eq!(
            not_up(&i("exited", 0, None, None), false).as_deref(),
            Some("exited (code 0)")
        );
        assert_eq!(
            not_up(&i("exited", 3, None, None), true).as_deref(),
            Some("exited (code 3)")
        );
        let mut r = i("restarting", 3, None, None);
        r.restarts = 2;
        assert_eq!(
            not_up(&r, false).as_deref(),
            Some("keeps exiting (code 3, restarted 2 times)")
        );
        let mut c = i("created", 128, None, None);
        c.error = "port is already allocated".into();
        assert_eq!(
            not_up(&c, false).as_deref(),
            Some("is created: port is already allocated")
        );
    }

    #[test]
    fn verdicts() {
        use Verdict::*;
        assert_eq!(
            verdict(&i("running", 0, Some("healthy"), None), Want::Healthy),
            Ready
        );
        assert!(matches!(
            verdict(&i("running", 0, Some("starting"), None), Want::Healthy),
            Pending(_)
        ));
        assert_eq!(
            verdict(
                &i("running", 0, Some("unhealthy"), Some((1, "db not up\n"))),
                Want::Healthy
            ),
            Failed("unhealthy; last check (exit 1): db not up".into())
        );
        assert!(
            matches!(verdict(&i("exited", 137, Some("starting"), None), Want::Healthy), Failed(m) if m.contains("code 137"))
        );
        assert_eq!(
            verdict(&i("running", 0, None, None), Want::Healthy),
            Failed("has no healthcheck".into())
        );
        assert_eq!(verdict(&i("exited", 0, None, None), Want::Completed), Ready);
        assert_eq!(
            verdict(&i("exited", 2, None, None), Want::Completed),
            Failed("exited with code 2".into())
        );
        assert!(matches!(
            verdict(&i("running", 0, None, None), Want::Completed),
            Pending(_)
        ));
    }
}
