//! The section-5 pages: orc's file formats (`orc.json`, the state registry,
//! the run report with `status --json` and the metrics textfile).

use crate::manual::{Block, Code, Item, P, format_page};

fn orc_json() -> String {
    let keys: Vec<Block> = vec![
        P(
            "A JSON object; every key is optional. An unknown key, a wrong type or invalid JSON is an error naming the file, line and column (exit 2, nothing done). Paths must be normal absolute paths (no empty, . or .. parts) and are resolved under the root.",
        ),
        Item(
            "base_dir",
            "the base dir of the phase directories (default /usr/libexec/os-refresh-config; OS_REFRESH_CONFIG_BASE_DIR overrides)",
        ),
        Item(
            "lock_file",
            "the lock every writing command takes (default /run/os-refresh-config.lock)",
        ),
        Item(
            "data_dir",
            "orc's own data: run reports, INFRA_VERSION, container runtime dirs (default /var/lib/orc)",
        ),
        Item(
            "phase_order",
            "design (pre-configure, configure, containers, migration, post-configure) or upstream (migration last). Unset: design for orc run, upstream for the os-refresh-config front end",
        ),
        Item("state.root", "the state root (default /mnt/state)"),
        Item(
            "state.pristine_root",
            "where finalise moves registered content (default /var/lib/use-ephemeral)",
        ),
        Item(
            "state.registry",
            "the registry of stateful paths (default /var/lib/use-ephemeral/stateful-paths), see orc-state-registry(5)",
        ),
        Item(
            "state.require_mount",
            "true: refuse to seed when the state root is on the root filesystem (default false)",
        ),
        Item(
            "containers.engine",
            "docker or podman (default: docker when its socket is there, else podman)",
        ),
        Item(
            "containers.infra_version",
            "a version string; when it changes every container is recreated",
        ),
        Item(
            "containers.scope",
            "which containers and networks are this box's (default: the machine id)",
        ),
        Item(
            "containers.specs_dir, containers.networks_dir",
            "the spec dirs (default /etc/orc/containers.d, /etc/orc/networks.d)",
        ),
        Item(
            "redact",
            "environment.d variable names whose values are masked in reports, status, errors and relayed output, besides the names that say secret (PASSWORD, SECRET, TOKEN, KEY, CREDENTIAL, ...)",
        ),
        Item(
            "metrics.textfile_dir",
            "a directory (under the root) where orc writes orc.prom after each run, atomically, for node-exporter's textfile collector; see orc-report(5). Unset: no file",
        ),
    ];
    format_page(
        "orc.json",
        "the configuration of orc",
        &[
            (
                "SYNOPSIS",
                vec![P(
                    "/etc/orc/orc.json (under the root; --config FILE overrides)",
                )],
            ),
            ("DESCRIPTION", keys),
            (
                "EXAMPLES",
                vec![Code(
                    "{\n  \"phase_order\": \"upstream\",\n  \"state\": {\"require_mount\": true},\n  \"containers\": {\"engine\": \"docker\", \"infra_version\": \"7\", \"scope\": \"shop-1\"},\n  \"metrics\": {\"textfile_dir\": \"/var/lib/prometheus/node-exporter\"}\n}",
                )],
            ),
            (
                "FILES",
                vec![Item("/etc/orc/orc.json", "the default location")],
            ),
            (
                "SEE ALSO",
                vec![P("orc(1), orc-state-registry(5), orc-report(5)")],
            ),
        ],
    )
}

fn registry() -> String {
    format_page(
        "orc-state-registry",
        "the registry of stateful paths (use-ephemeral's format)",
        &[
            (
                "SYNOPSIS",
                vec![P(
                    "/var/lib/use-ephemeral/stateful-paths (under the root; state.registry overrides)",
                )],
            ),
            (
                "DESCRIPTION",
                vec![
                    P(
                        "One line per stateful path: PATH;FLAG. FLAG true means finalise leaves a symlink at PATH pointing into the state root; an empty FLAG means none. A legacy line without ; is read as a path with the flag set. orc rewrites the file atomically (temp, fsync, rename), one line per path, under the lock.",
                    ),
                    P(
                        "PATH is absolute and normal: no . or .. parts, no trailing /, no NUL, newline or ;, not /, not inside the state or pristine roots. A bad line is an error naming the file, the line and the problem (exit 2, nothing done).",
                    ),
                ],
            ),
            (
                "EXAMPLES",
                vec![Code("/var/lib/mysql;\n/etc/ssh/keys;true")],
            ),
            (
                "FILES",
                vec![Item(
                    "/var/lib/use-ephemeral/stateful-paths",
                    "the default location",
                )],
            ),
            (
                "SEE ALSO",
                vec![P(
                    "orc-state-register(1), orc-state-finalise(1), orc-state-seed(1), orc.json(5)",
                )],
            ),
        ],
    )
}

fn report() -> String {
    format_page(
        "orc-report",
        "orc's run report, status --json and metrics textfile",
        &[
            (
                "SYNOPSIS",
                vec![P(
                    "/var/lib/orc/runs/RUN_ID.json, /var/lib/orc/last-run.json, orc status --json, METRICS_DIR/orc.prom",
                )],
            ),
            (
                "DESCRIPTION",
                vec![
                    P(
                        "A run writes its report when it starts (result running) and completes it at the end; last-run.json points at the newest; the newest 20 are kept. orc status --json prints the last report (null when orc never ran). The format is versioned: the field format is 1; its JSON Schema is /usr/share/orc/schema/orc-report-1.schema.json (schema/ in the sources). Reports are readable by root only; secret values are masked.",
                    ),
                    Item("format", "the format's version (1)"),
                    Item(
                        "run_id",
                        "a sequence number and the start time: 00000042-20261123T011521Z",
                    ),
                    Item(
                        "pid, pid_start, boot_id, pid_ns",
                        "the run's process and its pid namespace, to name it to the admin",
                    ),
                    Item(
                        "lock_file, lock_on_host",
                        "the lock the run holds; whether it was given on the command line (the host's path)",
                    ),
                    Item(
                        "started, ended",
                        "RFC 3339 UTC times (ended absent while running)",
                    ),
                    Item(
                        "duration_ms, waited_ms, overhead_ms",
                        "the run's time, the wait for the lock, and orc's own time (less the scripts, environment.d's bash and the engine)",
                    ),
                    Item(
                        "result",
                        "running, ok, failed, timeout, interrupted or crashed (a running report whose lock is no longer held)",
                    ),
                    Item("exit_code", "orc's exit code (null while running)"),
                    Item(
                        "running_step",
                        "orc status --json only, while a run holds the lock: step (phase/name), step_elapsed_ms, run_elapsed_ms",
                    ),
                    Item(
                        "base_dir, phase_order, error",
                        "the base dir, the phases in order, the run's error",
                    ),
                    Item(
                        "steps[]",
                        "phase, name, kind (script, state, containers, error-handler), started, duration_ms, result (ok, failed, timeout, interrupted, skipped), exit_code, signal, timed_out, note, output_tail",
                    ),
                    Item(
                        "skipped[]",
                        "path and reason of every file that did not run",
                    ),
                    Item(
                        "state[]",
                        "path, outcome (seeded, present, no-pristine, error), bytes, files, duration_ms, error",
                    ),
                    Item("containers[]", "name, action, reason, duration_ms, error"),
                ],
            ),
            (
                "METRICS",
                vec![
                    P(
                        "With metrics.textfile_dir set in orc.json(5), every run ends by writing orc.prom there (temp, fsync, rename) in the Prometheus text format, for node-exporter's textfile collector:",
                    ),
                    Item(
                        "orc_last_run_timestamp_seconds",
                        "when the run ended (Unix time)",
                    ),
                    Item("orc_last_run_success", "1 if the run succeeded, else 0"),
                    Item("orc_last_run_duration_seconds", "the run's duration"),
                    Item("orc_last_run_exit_code", "orc's exit code"),
                    Item(
                        "orc_last_run_info{run_id,result}",
                        "1, labelled with the run id and result",
                    ),
                    Item(
                        "orc_step_duration_seconds{phase,step}",
                        "each step's duration",
                    ),
                    Item(
                        "orc_step_success{phase,step}",
                        "1 if the step succeeded (or was skipped), else 0",
                    ),
                    Item(
                        "orc_state_paths{outcome}",
                        "stateful paths by seeding outcome",
                    ),
                    Item(
                        "orc_containers{action}",
                        "containers by the action the converge took",
                    ),
                ],
            ),
            (
                "EXAMPLES",
                vec![Code(
                    "orc status --json | jq -r '.result, (.steps[] | select(.result != \"ok\") | .name)'\nfor r in /srv/roots/*; do orc --root \"$r\" status --json; done   # see scripts/fleet.sh",
                )],
            ),
            (
                "FILES",
                vec![
                    Item("/var/lib/orc/runs/", "the reports (0600, dir 0700)"),
                    Item("/var/lib/orc/last-run.json", "symlink to the newest"),
                    Item(
                        "/usr/share/orc/schema/orc-report-1.schema.json",
                        "the JSON Schema of format 1",
                    ),
                ],
            ),
            (
                "SEE ALSO",
                vec![P("orc-status(1), orc-run(1), orc.json(5)")],
            ),
        ],
    )
}

/// Every section-5 page: (file name, roff).
pub fn pages() -> Vec<(String, String)> {
    vec![
        ("orc.json.5".into(), orc_json()),
        ("orc-state-registry.5".into(), registry()),
        ("orc-report.5".into(), report()),
    ]
}
