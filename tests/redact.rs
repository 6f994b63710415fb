//! Redaction by name: the values of environment.d variables whose names say
//! secret (or that the config's `redact` names) are masked in everything orc
//! writes, the scripts' output it relays included, even when a secret arrives
//! in two pieces; every other value stays readable.

mod common;

use std::fs;

use common::*;

const LEAKS: &[&str] = &["hunter2", "s3cret", "tok-abcdef123", "4711-pin-value"];

/// Everything orc wrote: the run's stdout and stderr, every file in its data dir, and
/// `status` and `status --json`.
fn everything(sb: &Sandbox, run: &std::process::Output) -> String {
    let mut s = format!("{}{}", out(run), err(run));
    for e in walkdir::WalkDir::new(sb.path("var/lib/orc"))
        .into_iter()
        .flatten()
    {
        if e.file_type().is_file() {
            s.push_str(&String::from_utf8_lossy(&fs::read(e.path()).unwrap()));
        }
    }
    for args in [&["status"][..], &["status", "--json"]] {
        let o = sb.orc().args(args).output().unwrap();
        s.push_str(&out(&o));
        s.push_str(&err(&o));
    }
    s
}

fn leaky_box(sb: &Sandbox) {
    sb.config(r#"{"redact": ["SITE_PIN"]}"#);
    write_mode(
        &sb.base().join("environment.d/10-env"),
        "export DB_PASSWORD=hunter2-s3cret\nexport API_TOKEN=tok-abcdef123\n\
         export SITE_PIN=4711-pin-value\nexport ENABLED=true PORT=8080 SERVICE=nova-api\n\
         LISTEN=0.0.0.0\n",
        0o644,
    );
    sb.script(
        "configure.d",
        "10-leaky",
        "echo \"password is $DB_PASSWORD\"\n\
         echo \"token $API_TOKEN\" >&2\n\
         echo \"pin $SITE_PIN\"\n\
         printf 'split: hunt'; sleep 0.3; printf 'er2-s3cret!\\n'\n\
         echo \"$SERVICE failed to bind 0.0.0.0:$PORT enabled=$ENABLED\"\n\
         exit 1",
    );
}

#[test]
fn secret_named_values_are_masked_everywhere_and_other_values_stay_readable() {
    let sb = Sandbox::new();
    leaky_box(&sb);
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 1);
    let all = everything(&sb, &o);
    for leak in LEAKS {
        assert!(
            !all.contains(leak),
            "{leak} leaked:\n{}",
            all.lines()
                .filter(|l| l.contains(leak))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert_eq!(
        out(&o),
        "password is ***\npin ***\nsplit: ***!\nnova-api failed to bind 0.0.0.0:8080 enabled=true\n"
    );
    assert!(err(&o).contains("token ***\n"), "{}", err(&o));
    let report = sb.last_report();
    let step = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "10-leaky")
        .unwrap();
    let tail = step["output_tail"].as_str().unwrap().to_string();
    assert!(
        tail.contains("nova-api failed to bind 0.0.0.0:8080 enabled=true"),
        "{tail}"
    );
    assert!(tail.contains("password is ***"), "{tail}");
}

#[test]
fn dib_run_parts_masks_the_same_way() {
    let sb = Sandbox::new();
    leaky_box(&sb);
    let dir = sb.base().join("configure.d");
    let o = sb.orc().arg("dib-run-parts").arg(&dir).output().unwrap();
    expect_code(&o, 1);
    let all = format!("{}{}", out(&o), err(&o));
    for leak in LEAKS {
        assert!(!all.contains(leak), "{leak} leaked:\n{all}");
    }
    assert!(
        out(&o).contains("nova-api failed to bind 0.0.0.0:8080 enabled=true"),
        "{all}"
    );
}

/// A daemon a script leaves behind writes after orc exited: `orc relay` carries its
/// output on, masked the same way (a secret split across two writes included).
#[test]
fn a_daemons_output_after_orc_exits_is_masked_too() {
    let sb = Sandbox::new();
    leaky_box(&sb);
    let go_on = sb.path("go-on");
    sb.script(
        "configure.d",
        "10-leaky",
        &format!(
            "({}; echo \"late password $DB_PASSWORD\"; echo \"late token $API_TOKEN\" >&2\n\
             printf 'split: hunt'; sleep 0.3; printf 'er2-s3cret!\\n'\n\
             echo \"port $PORT\"; echo daemon-done; echo daemon-done >&2) &\necho script-done",
            hold_until(&go_on)
        ),
    );
    let (out_log, err_log) = (sb.path("stdout.log"), sb.path("stderr.log"));
    let o = sb
        .orc()
        .arg("run")
        .stdout(fs::File::create(&out_log).unwrap())
        .stderr(fs::File::create(&err_log).unwrap())
        .output()
        .unwrap();
    expect_code(&o, 0);
    release(&go_on);
    wait_for_text(&out_log, "daemon-done");
    wait_for_text(&err_log, "daemon-done");
    let (stdout, stderr) = (
        fs::read_to_string(&out_log).unwrap(),
        fs::read_to_string(&err_log).unwrap(),
    );
    for leak in LEAKS {
        assert!(
            !stdout.contains(leak) && !stderr.contains(leak),
            "{leak} leaked:\n{stdout}{stderr}"
        );
    }
    assert_eq!(
        stdout,
        "script-done\nlate password ***\nsplit: ***!\nport 8080\ndaemon-done\n"
    );
    assert!(stderr.contains("late token ***\n"), "{stderr}");
}
