//! A spec as engine CLI arguments (pure): `run -d` (or `create`) for docker
//! and podman, and `network create`. The two dialects differ only in how a
//! healthcheck's exec form and a network's aliases are written.

use std::path::PathBuf;

use super::engine;
use super::fields::HealthCmd;
use super::network::NetSpec;
use super::secrets::Prepared;
use super::spec::Spec;
use crate::config::Engine as Kind;

/// What besides the spec goes into the arguments.
pub struct ArgCtx<'a> {
    pub kind: Kind,
    pub scope: &'a str,
    pub infra: &'a str,
    /// The volumes' host paths, in spec order.
    pub sources: &'a [PathBuf],
    /// The env file and the secrets' and configs' host paths.
    pub prepared: &'a Prepared,
    /// The container's name: the spec's, or a temporary one while its old one runs.
    pub name: &'a str,
    /// `orc.spec-hash`: the spec's and its image ID's.
    pub hash: &'a str,
}

/// `run -d` needs every network at create time: docker (20.10) takes one `--network`
/// there, so a docker container on several networks is created, connected, then started.
pub fn single_call(s: &Spec, kind: Kind) -> bool {
    kind == Kind::Podman || s.networks.len() <= 1
}

/// A word as `sh -c` reads it.
pub fn shell_quote(a: &str) -> String {
    let plain = !a.is_empty()
        && a.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_./=:,+-@%".contains(&c));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

fn labels(s: &Spec, c: &ArgCtx, a: &mut Vec<String>) {
    let mut label = |k: &str, v: &str| {
        a.push("--label".into());
        a.push(format!("{k}={v}"));
    };
    label(engine::MANAGED, "true");
    label(engine::SCOPE, c.scope);
    label(engine::INFRA, c.infra);
    label(engine::HASH, c.hash);
    label(engine::FOR, &s.name);
    if !s.store_data().is_empty() {
        label(
            engine::STORE,
            &serde_json::to_string(s.store_data()).expect("strings"),
        );
    }
    if let Some(t) = s.stop_timeout {
        label(engine::STOP_TIMEOUT, &t.to_string());
    }
    for (k, v) in &s.labels {
        label(k, v);
    }
}

fn basics(s: &Spec, c: &ArgCtx, a: &mut Vec<String>) {
    a.extend(["--restart".into(), s.restart.arg()]);
    // Values never go into argv: the engine reads them from orc's 0600 file.
    if let Some(f) = &c.prepared.env_file {
        a.extend(["--env-file".into(), f.display().to_string()]);
    }
    for (v, src) in s.volumes.iter().zip(c.sources) {
        let opts: Vec<&str> = v
            .read_only
            .then_some("ro")
            .into_iter()
            .chain(v.selinux.map(|l| l.flag()))
            .collect();
        let opts = if opts.is_empty() {
            String::new()
        } else {
            format!(":{}", opts.join(","))
        };
        a.extend([
            "--volume".into(),
            format!("{}:{}{opts}", src.display(), v.target.display()),
        ]);
    }
    let targets = s
        .secrets
        .iter()
        .map(|m| m.secret_target())
        .chain(s.configs.iter().map(|m| m.target.clone()));
    for (t, src) in targets.zip(&c.prepared.files) {
        a.extend(["--volume".into(), format!("{}:{t}:ro", src.display())]);
    }
    for p in &s.ports {
        a.extend(["--publish".into(), p.clone()]);
    }
    let mut opt = |flag: &str, v: Option<&str>| {
        if let Some(v) = v {
            a.extend([flag.to_string(), v.to_string()]);
        }
    };
    opt("--network", s.network.as_deref());
    opt("--user", s.user.as_deref());
    opt("--hostname", s.hostname.as_deref());
    opt("--memory", s.memory.as_deref());
    if s.init {
        a.push("--init".into());
    }
    if let Some(t) = s.stop_timeout {
        a.extend(["--stop-timeout".into(), t.to_string()]);
    }
}

fn healthcheck(s: &Spec, kind: Kind, a: &mut Vec<String>) {
    let Some(h) = &s.healthcheck else { return };
    let cmd = match h.cmd() {
        HealthCmd::Disabled => {
            a.push("--no-healthcheck".into());
            return;
        }
        HealthCmd::Shell(c) => c,
        HealthCmd::Exec(argv) if kind == Kind::Podman => {
            serde_json::to_string(&argv).expect("strings")
        }
        HealthCmd::Exec(argv) => argv
            .iter()
            .map(|x| shell_quote(x))
            .collect::<Vec<_>>()
            .join(" "),
    };
    a.extend(["--health-cmd".into(), cmd]);
    for (flag, v) in [
        ("--health-interval", &h.interval),
        ("--health-timeout", &h.timeout),
        ("--health-start-period", &h.start_period),
    ] {
        if let Some(v) = v {
            a.extend([flag.into(), v.0.clone()]);
        }
    }
    if let Some(r) = h.retries {
        a.extend(["--health-retries".into(), r.to_string()]);
    }
}

fn compose(s: &Spec, a: &mut Vec<String>) {
    let lists: [(&str, &Vec<String>); 6] = [
        ("--cap-add", &s.cap_add),
        ("--cap-drop", &s.cap_drop),
        ("--device", &s.devices),
        ("--tmpfs", &s.tmpfs),
        ("--add-host", &s.extra_hosts),
        ("--security-opt", &s.security_opt),
    ];
    for (flag, list) in lists {
        for v in list {
            a.extend([flag.to_string(), v.clone()]);
        }
    }
    for (k, v) in &s.sysctls {
        a.extend(["--sysctl".into(), format!("{k}={v}")]);
    }
    for (k, u) in &s.ulimits {
        a.extend(["--ulimit".into(), format!("{k}={}", u.flag())]);
    }
    if s.read_only {
        a.push("--read-only".into());
    }
    let mut opt = |flag: &str, v: Option<String>| {
        if let Some(v) = v {
            a.extend([flag.to_string(), v]);
        }
    };
    opt("--pids-limit", s.pids_limit.map(|p| p.to_string()));
    opt("--cpus", s.cpus.as_ref().map(|c| c.0.clone()));
    opt("--stop-signal", s.stop_signal.clone());
    opt(
        "--workdir",
        s.working_dir.as_ref().map(|w| w.display().to_string()),
    );
    opt("--shm-size", s.shm_size.clone());
    if let Some(l) = &s.logging {
        opt("--log-driver", l.driver.clone());
        for (k, v) in &l.options {
            a.extend(["--log-opt".into(), format!("{k}={v}")]);
        }
    }
}

/// The box fields (each only when used).
fn box_fields(s: &Spec, a: &mut Vec<String>) {
    if s.privileged {
        a.push("--privileged".into());
    }
    if s.pull_policy.is_some() {
        // orc made the image present by the policy before the plan (its ID is in the
        // hash): the engine must not pull it again (`always` pulls once per converge).
        a.extend(["--pull".into(), "never".into()]);
    }
    let lists: [(&str, &Vec<String>); 6] = [
        ("--dns", &s.dns),
        ("--dns-search", &s.dns_search),
        ("--dns-option", &s.dns_opt),
        ("--group-add", &s.group_add),
        ("--device-cgroup-rule", &s.device_cgroup_rules),
        ("--expose", &s.expose),
    ];
    for (flag, list) in lists {
        for v in list {
            a.extend([flag.to_string(), v.clone()]);
        }
    }
    if let Some(o) = s.oom_score_adj {
        a.extend(["--oom-score-adj".into(), o.to_string()]);
    }
    if let Some(c) = &s.cgroup_parent {
        a.extend(["--cgroup-parent".into(), c.clone()]);
    }
    resources(s, a);
}

/// The resource and namespace fields (each only when used).
fn resources(s: &Spec, a: &mut Vec<String>) {
    let opts: [(&str, Option<String>); 12] = [
        ("--domainname", s.domainname.clone()),
        ("--mac-address", s.mac_address.clone()),
        ("--memory-reservation", s.mem_reservation.clone()),
        ("--memory-swap", s.memswap_limit.clone()),
        (
            "--memory-swappiness",
            s.mem_swappiness.map(|v| v.to_string()),
        ),
        ("--cpu-shares", s.cpu_shares.map(|v| v.to_string())),
        ("--cpu-quota", s.cpu_quota.map(|v| v.to_string())),
        ("--cpu-period", s.cpu_period.map(|v| v.to_string())),
        ("--cpuset-cpus", s.cpuset.clone()),
        ("--pid", s.pid.clone()),
        ("--ipc", s.ipc.clone()),
        ("--uts", s.uts.clone()),
    ];
    for (flag, v) in opts {
        if let Some(v) = v {
            a.extend([flag.to_string(), v]);
        }
    }
    if s.oom_kill_disable {
        a.push("--oom-kill-disable".into());
    }
}

fn networks(s: &Spec, kind: Kind, a: &mut Vec<String>) {
    match kind {
        Kind::Podman => {
            for (n, att) in &s.networks {
                let mut opts: Vec<String> =
                    att.aliases.iter().map(|x| format!("alias={x}")).collect();
                opts.extend(att.ipv4_address.iter().map(|ip| format!("ip={ip}")));
                opts.extend(att.ipv6_address.iter().map(|ip| format!("ip6={ip}")));
                let v = if opts.is_empty() {
                    n.clone()
                } else {
                    format!("{n}:{}", opts.join(","))
                };
                a.extend(["--network".into(), v]);
            }
        }
        Kind::Docker => {
            if let Some((n, att)) = s.networks.iter().next() {
                a.extend(["--network".into(), n.clone()]);
                for x in &att.aliases {
                    a.extend(["--network-alias".into(), x.clone()]);
                }
                if let Some(ip) = att.ipv4_address {
                    a.extend(["--ip".into(), ip.to_string()]);
                }
                if let Some(ip) = att.ipv6_address {
                    a.extend(["--ip6".into(), ip.to_string()]);
                }
            }
        }
    }
}

/// The networks a docker container joins after `create` (all but the first), each with
/// the options of its `network connect` (`--alias`, `--ip`, `--ip6`).
pub fn later_networks(s: &Spec, kind: Kind) -> Vec<(String, Vec<String>)> {
    if single_call(s, kind) {
        return Vec::new();
    }
    s.networks
        .iter()
        .skip(1)
        .map(|(n, a)| {
            let mut opts: Vec<String> = Vec::new();
            for x in &a.aliases {
                opts.extend(["--alias".into(), x.clone()]);
            }
            if let Some(ip) = a.ipv4_address {
                opts.extend(["--ip".into(), ip.to_string()]);
            }
            if let Some(ip) = a.ipv6_address {
                opts.extend(["--ip6".into(), ip.to_string()]);
            }
            (n.clone(), opts)
        })
        .collect()
}

/// `run -d --name NAME ...` (or `create ...` when `detach` is false) for a spec.
pub fn run_args(s: &Spec, c: &ArgCtx, detach: bool) -> Vec<String> {
    let mut a: Vec<String> = if detach {
        vec!["run".into(), "-d".into()]
    } else {
        vec!["create".into()]
    };
    a.extend(["--name".into(), c.name.to_string()]);
    labels(s, c, &mut a);
    basics(s, c, &mut a);
    networks(s, c.kind, &mut a);
    healthcheck(s, c.kind, &mut a);
    compose(s, &mut a);
    box_fields(s, &mut a);
    let mut tail: Vec<String> = Vec::new();
    if let Some(ep) = &s.entrypoint {
        a.extend(["--entrypoint".into(), ep[0].clone()]);
        tail.extend(ep[1..].iter().cloned());
    }
    a.push(s.image.clone());
    a.extend(tail);
    a.extend(s.command.iter().flatten().cloned());
    a
}

fn words(w: &[&str], rest: &[String]) -> Vec<String> {
    w.iter()
        .map(|x| x.to_string())
        .chain(rest.iter().cloned())
        .collect()
}

/// `stop -t T ID...`: one graceful stop for several containers.
pub fn stop(ids: &[String], timeout: u32) -> Vec<String> {
    words(&["stop", "-t", &timeout.to_string()], ids)
}

/// `rm ID...`.
pub fn rm(ids: &[String]) -> Vec<String> {
    words(&["rm"], ids)
}

/// `rm -f ID`: a container orc made and never put into service.
pub fn discard(id: &str) -> Vec<String> {
    words(&["rm", "-f", id], &[])
}

/// `start NAME...`.
pub fn start(names: &[String]) -> Vec<String> {
    words(&["start"], names)
}

pub fn rename(from: &str, to: &str) -> Vec<String> {
    words(&["rename", from, to], &[])
}

pub fn pull(image: &str) -> Vec<String> {
    words(&["pull", "--quiet", image], &[])
}

/// `load` from the archive open at fd 3.
pub fn load() -> Vec<String> {
    words(&["load", "-i", "/dev/fd/3"], &[])
}

/// `exec NAME ARGV...`: a hook inside a container.
pub fn exec(name: &str, argv: &[String]) -> Vec<String> {
    words(&["exec", name], argv)
}

pub fn network_rm(name: &str) -> Vec<String> {
    words(&["network", "rm", name], &[])
}

/// `network connect [OPTS] NET CONTAINER`.
/// `network disconnect NET CONTAINER`.
pub fn network_disconnect(net: &str, container: &str) -> Vec<String> {
    words(&["network", "disconnect", net, container], &[])
}

pub fn network_connect(net: &str, container: &str, opts: &[String]) -> Vec<String> {
    let mut a = words(&["network", "connect"], opts);
    a.extend([net.to_string(), container.to_string()]);
    a
}

/// `network create` for a declared network, labelled with the scope and its hash.
pub fn network_args(n: &NetSpec, scope: &str) -> Vec<String> {
    let mut a: Vec<String> = vec!["network".into(), "create".into()];
    let mut label = |k: &str, v: &str| {
        a.push("--label".into());
        a.push(format!("{k}={v}"));
    };
    label(engine::MANAGED, "true");
    label(engine::SCOPE, scope);
    label(engine::NET_HASH, &n.hash());
    for (k, v) in &n.labels {
        label(k, v);
    }
    for (flag, v) in [
        ("--driver", &n.driver),
        ("--subnet", &n.subnet),
        ("--gateway", &n.gateway),
    ] {
        if let Some(v) = v {
            a.extend([flag.to_string(), v.clone()]);
        }
    }
    if n.internal {
        a.push("--internal".into());
    }
    a.push(n.name.clone());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(kind: Kind, sources: &'a [PathBuf]) -> ArgCtx<'a> {
        static NONE: Prepared = Prepared {
            env_file: None,
            files: Vec::new(),
        };
        ArgCtx {
            kind,
            scope: "box1",
            infra: "7",
            sources,
            prepared: &NONE,
            name: "db",
            hash: "h1",
        }
    }

    #[test]
    fn run_args_carry_labels_and_options() {
        let s: Spec = serde_json::from_value(serde_json::json!({
            "name": "db", "image": "busybox:1", "command": ["sleep", "1d"],
            "entrypoint": ["/bin/sh", "-c"], "env": {"B": "2", "A": "1"},
            "volumes": [{"source": "data", "target": "/data"}, {"source": "/srv/x", "target": "/x", "read_only": true}],
            "ports": ["8080:80"], "network": "host", "labels": {"app": "db"}, "user": "1000",
            "hostname": "db1", "memory": "64m", "init": true, "stop_timeout": 5,
            "hooks": {"store_data": ["sh", "-c", "dump > /data/dump"]}
        }))
        .unwrap();
        let sources = [
            "/r/var/lib/orc/containers/db/data".into(),
            "/r/srv/x".into(),
        ];
        let a = run_args(&s, &ctx(Kind::Docker, &sources), true);
        let line = a.join(" ");
        for want in [
            "run -d --name db --label orc.managed=true --label orc.scope=box1 --label orc.infra-version=7",
            "--label orc.spec-hash=h1 --label orc.for=db",
            r#"--label orc.store-data=["sh","-c","dump > /data/dump"]"#,
            "--label orc.stop-timeout=5 --label app=db --restart unless-stopped",
            "--volume /r/var/lib/orc/containers/db/data:/data --volume /r/srv/x:/x:ro",
            "--publish 8080:80 --network host --user 1000 --hostname db1 --memory 64m --init --stop-timeout 5",
            "--entrypoint /bin/sh busybox:1 -c sleep 1d",
        ] {
            assert!(line.contains(want), "missing {want:?} in {line}");
        }
        assert!(line.ends_with("busybox:1 -c sleep 1d"));
        assert_eq!(
            run_args(&s, &ctx(Kind::Docker, &sources), false)[..3],
            ["create", "--name", "db"]
        );
    }

    #[test]
    fn compose_fields_in_both_dialects() {
        let s: Spec = serde_json::from_value(serde_json::json!({
            "name": "app", "image": "i",
            "healthcheck": {"test": ["CMD", "test", "-f", "/tmp/it's ok"], "interval": "1s", "timeout": "2s", "retries": 4, "start_period": "3s"},
            "cap_add": ["NET_ADMIN"], "cap_drop": ["MKNOD"], "devices": ["/dev/fuse"],
            "tmpfs": ["/run:size=8m"], "extra_hosts": ["db:10.0.0.2"], "sysctls": {"net.core.somaxconn": 1024},
            "ulimits": {"nofile": {"soft": 1024, "hard": 2048}, "nproc": 512}, "read_only": true,
            "security_opt": ["no-new-privileges"], "pids_limit": 100, "cpus": "0.5",
            "logging": {"driver": "json-file", "options": {"max-size": "10m"}},
            "stop_signal": "SIGQUIT", "working_dir": "/srv", "shm_size": "64m",
            "networks": {"back": {}, "front": {"aliases": ["www", "web"], "ipv4_address": "10.2.0.7"}}
        }))
        .unwrap();
        let docker = run_args(&s, &ctx(Kind::Docker, &[]), false).join(" ");
        for want in [
            "--network back --health-cmd test -f '/tmp/it'\\''s ok' --health-interval 1s --health-timeout 2s --health-start-period 3s --health-retries 4",
            "--cap-add NET_ADMIN --cap-drop MKNOD --device /dev/fuse --tmpfs /run:size=8m --add-host db:10.0.0.2 --security-opt no-new-privileges",
            "--sysctl net.core.somaxconn=1024 --ulimit nofile=1024:2048 --ulimit nproc=512 --read-only",
            "--pids-limit 100 --cpus 0.5 --stop-signal SIGQUIT --workdir /srv --shm-size 64m --log-driver json-file --log-opt max-size=10m",
        ] {
            assert!(docker.contains(want), "missing {want:?} in {docker}");
        }
        assert!(!single_call(&s, Kind::Docker));
        assert_eq!(
            later_networks(&s, Kind::Docker),
            [(
                "front".to_string(),
                ["--alias", "www", "--alias", "web", "--ip", "10.2.0.7"]
                    .map(String::from)
                    .to_vec()
            )]
        );
        let podman = run_args(&s, &ctx(Kind::Podman, &[]), true).join(" ");
        assert!(
            podman.contains(r#"--network back --network front:alias=www,alias=web,ip=10.2.0.7 --health-cmd ["test","-f","/tmp/it's ok"]"#),
            "{podman}"
        );
        assert!(single_call(&s, Kind::Podman) && later_networks(&s, Kind::Podman).is_empty());
    }

    #[test]
    fn box_fields_and_secrets_as_flags() {
        let s: Spec = serde_json::from_value(serde_json::json!({
            "name": "a", "image": "i", "env": {"A": "1"}, "privileged": true, "pull_policy": "always",
            "dns": ["10.0.0.1"], "dns_search": ["example.org"], "dns_opt": ["ndots:2"],
            "group_add": ["audio"], "oom_score_adj": 5, "device_cgroup_rules": ["c 1:3 mr"],
            "cgroup_parent": "box.slice", "expose": ["80"], "restart": "on-failure:3",
            "memswap_limit": "-1", "cpuset": "0-1", "pid": "host", "oom_kill_disable": true,
            "secrets": [{"source": "/s/pw", "target": "pw"}], "configs": [{"source": "/s/c", "target": "/etc/c"}],
            "volumes": [{"source": "/x", "target": "/x", "read_only": true, "selinux": "Z"}],
            "networks": {"n": {"aliases": ["w"], "ipv4_address": "10.1.0.5"}}
        }))
        .unwrap();
        let prepared = Prepared {
            env_file: Some("/rt/a/.orc-env".into()),
            files: vec!["/r/s/pw".into(), "/r/s/c".into()],
        };
        let sources = ["/r/x".into()];
        let c = ArgCtx {
            prepared: &prepared,
            ..ctx(Kind::Docker, &sources)
        };
        let line = run_args(&s, &c, true).join(" ");
        for want in [
            "--restart on-failure:3 --env-file /rt/a/.orc-env --volume /r/x:/x:ro,Z --volume /r/s/pw:/run/secrets/pw:ro --volume /r/s/c:/etc/c:ro",
            "--network n --network-alias w --ip 10.1.0.5",
            "--privileged --pull never --dns 10.0.0.1 --dns-search example.org --dns-option ndots:2 --group-add audio --device-cgroup-rule c 1:3 mr --expose 80 --oom-score-adj 5 --cgroup-parent box.slice",
            "--memory-swap -1 --cpuset-cpus 0-1 --pid host --oom-kill-disable",
        ] {
            assert!(line.contains(want), "missing {want:?} in {line}");
        }
        assert!(!line.contains("A=1"), "an env value in argv: {line}");
        let podman = run_args(
            &s,
            &ArgCtx {
                kind: Kind::Podman,
                ..c
            },
            true,
        )
        .join(" ");
        assert!(
            podman.contains("--network n:alias=w,ip=10.1.0.5"),
            "{podman}"
        );
    }

    #[test]
    fn shell_string_and_disabled_healthchecks() {
        let s: Spec = serde_json::from_value(serde_json::json!({"name": "a", "image": "i", "healthcheck": {"test": "pg_isready -q"}})).unwrap();
        for kind in [Kind::Docker, Kind::Podman] {
            let a = run_args(&s, &ctx(kind, &[]), true);
            let i = a.iter().position(|x| x == "--health-cmd").unwrap();
            assert_eq!(a[i + 1], "pg_isready -q");
        }
        let s: Spec = serde_json::from_value(
            serde_json::json!({"name": "a", "image": "i", "healthcheck": {"test": ["NONE"]}}),
        )
        .unwrap();
        assert!(
            run_args(&s, &ctx(Kind::Docker, &[]), true).contains(&"--no-healthcheck".to_string())
        );
    }

    #[test]
    fn network_create_args() {
        let n: NetSpec = serde_json::from_value(serde_json::json!({"name": "front", "subnet": "10.9.0.0/24", "gateway": "10.9.0.1", "internal": true, "labels": {"tier": "web"}})).unwrap();
        let a = network_args(&n, "box1").join(" ");
        assert_eq!(
            a,
            format!(
                "network create --label orc.managed=true --label orc.scope=box1 --label orc.network-hash={} --label tier=web --subnet 10.9.0.0/24 --gateway 10.9.0.1 --internal front",
                n.hash()
            )
        );
    }
}
