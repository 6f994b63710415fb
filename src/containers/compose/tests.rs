use std::path::Path;

use super::*;

fn env(k: &str) -> Option<String> {
    match k {
        "TAG" => Some("1.36".into()),
        "DB_PASSWORD" => Some("s3cret-pw".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn load(text: &str) -> crate::error::Result<Loaded> {
    parse(
        text.as_bytes(),
        &Source {
            shown: Path::new("/r/etc/orc/compose.d/app.yaml"),
            sys: Path::new("/etc/orc/compose.d/app.yaml"),
            data_dir: Path::new("/var/lib/orc"),
            env: &env,
        },
    )
}

fn err(text: &str) -> String {
    load(text).unwrap_err().to_string()
}

#[test]
fn the_same_service_as_json_and_compose_hashes_alike() {
    let c = load(
        r#"
services:
  web:
    image: "busybox:${TAG}"
    command: sh -c 'echo "hi there"; sleep 1d'
    environment:
      - A=1
      - DB_PASSWORD
    volumes:
      - ./html:/srv/html:ro
      - data:/data
    ports:
      - "8080:80"
      - "8000-8010:8000-8010/udp"
      - 9000
      - {target: 53, published: "5353", protocol: udp, host_ip: 127.0.0.1}
      - {target: 443}
    restart: on-failure:3
    depends_on:
      db:
        condition: service_healthy
    stop_grace_period: 1m30s
    mem_limit: 64m
    cap_add: [NET_ADMIN]
    dns: 10.0.0.1
    labels: [tier=web]
    x-orc:
      hooks:
        store_data: [sh, -c, dump]
      volumes:
        - {source: log, target: /var/log/web}
  db:
    image: busybox
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
volumes:
  data:
"#,
    )
    .unwrap();
    let json: Spec = serde_json::from_value(serde_json::json!({
        "name": "app-web",
        "image": "busybox:1.36",
        "command": ["sh", "-c", "echo \"hi there\"; sleep 1d"],
        "env": {"A": "1", "DB_PASSWORD": "s3cret-pw"},
        "volumes": [
            {"source": "/etc/orc/compose.d/html", "target": "/srv/html", "read_only": true},
            {"source": "/var/lib/orc/volumes/app_data", "target": "/data"},
            {"source": "log", "target": "/var/log/web"}
        ],
        "ports": ["8080:80", "8000-8010:8000-8010/udp", "9000", "127.0.0.1:5353:53/udp", "443"],
        "restart": "on-failure:3",
        "depends_on": {"app-db": {"condition": "service_healthy"}},
        "stop_timeout": 90,
        "memory": "64m",
        "cap_add": ["NET_ADMIN"],
        "dns": ["10.0.0.1"],
        "labels": {"tier": "web"},
        "hooks": {"store_data": ["sh", "-c", "dump"]},
        "networks": {"app_default": {"aliases": ["web"]}}
    }))
    .unwrap();
    assert_eq!(c.specs[0], json);
    assert_eq!(c.specs[0].hash("sha256:1"), json.hash("sha256:1"));
    assert_eq!(c.specs[0].legacy_hash(), json.legacy_hash());
    assert_eq!(c.networks.len(), 1);
    assert_eq!(c.networks[0].name, "app_default");
    assert!(c.literal_secrets.is_empty());
}

#[test]
fn an_unsupported_key_names_file_line_column_and_key() {
    let e = err("services:\n  web:\n    image: busybox\n    build: .\n");
    assert_eq!(
        e,
        "/r/etc/orc/compose.d/app.yaml: line 4, column 5: web: services.web.build: unsupported key (a box does not build images: ship them (x-orc.image_archive))"
    );
    let e = err("services:\n  web:\n    image: busybox\n    colour: red\n");
    assert!(
        e.contains("line 4, column 5") && e.contains("services.web.colour"),
        "{e}"
    );
    let e = err("include: [x.yaml]\nservices: {}\n");
    assert!(
        e.contains("line 1, column 1: include: unsupported top-level key"),
        "{e}"
    );
    for (text, want) in [
        (
            "services:\n  w:\n    image: i\n    ports: ['80:http']\n",
            "line 4, column 5: services.w.ports",
        ),
        (
            "services:\n  w:\n    image: i\n    cap_add: [NET_ADMN]\n",
            "services.w.cap_add: \"NET_ADMN\" is not valid",
        ),
        (
            "services:\n  w:\n    image: i\n    restart: sometimes\n",
            "line 4, column 5: services.w.restart",
        ),
        (
            "services:\n  w:\n    image: i\n    healthcheck: [1]\n",
            "services.w.healthcheck: must be a mapping",
        ),
        (
            "services:\n  w:\n    image: i\n    networks: [nope]\n",
            "\"nope\" is not in this file's networks",
        ),
        (
            "services:\n  w:\n    image: i\n    volumes: [data:/d]\n",
            "volume \"data\" is not in this file's volumes",
        ),
        (
            "services:\n  w:\n    image: i\n    volumes: ['/x:/d:q']\n",
            "mode \"q\" is not supported",
        ),
        (
            "services:\n  w:\n    image: i\n    secrets: [pw]\n",
            "\"pw\" is not in this file's secrets",
        ),
        (
            "services:\n  w:\n    image: i\n    network_mode: service:db\n",
            "network_mode",
        ),
        (
            "services:\n  w:\n    image: ${NOPE:?set NOPE}\n",
            "line 3, column 12: required variable NOPE is missing a value: set NOPE",
        ),
        (
            "services:\n  w:\n    image: i\n    command: sh -c 'x\n",
            "an unclosed ' quote",
        ),
        (
            "services:\n  w:\n    user: x\n",
            "services.w: image is required",
        ),
        (
            "secrets:\n  pw:\n    environment: PW\n",
            "secrets.pw.environment: unsupported key",
        ),
    ] {
        let e = err(text);
        assert!(e.contains(want), "{text}: {e}");
    }
}

#[test]
fn networks_volumes_secrets_and_configs() {
    let c = load(
        r#"
name: Shop
services:
  app:
    image: i
    networks:
      front:
        aliases: [www]
        ipv4_address: 10.5.0.9
      back:
    secrets: [db_pw, {source: api, target: /etc/api.key}]
    configs: [nginx]
    env_file: [./app.env, {path: /etc/orc/more.env, required: true}]
    privileged: true
    pull_policy: never
    group_add: [audio, 1000]
    oom_score_adj: -500
    device_cgroup_rules: ["c 1:3 mr"]
    cgroup_parent: box.slice
    dns_search: example.org
    pid: host
    cpuset: 0-1
    memswap_limit: -1
    mem_swappiness: 0
  solo:
    image: i
    network_mode: host
networks:
  front:
    ipam: {config: [{subnet: 10.5.0.0/24, gateway: 10.5.0.1}]}
  back:
    internal: true
    name: shared-back
secrets:
  db_pw: {file: ./secrets/db_pw}
  api: {file: /etc/orc/secrets/api}
configs:
  nginx: {file: nginx.conf}
"#,
    )
    .unwrap();
    let app = &c.specs[0];
    assert_eq!(
        app.networks.keys().collect::<Vec<_>>(),
        ["shared-back", "shop_front"]
    );
    assert_eq!(app.networks["shop_front"].aliases, ["app", "www"]);
    assert_eq!(app.networks["shared-back"].aliases, ["app"]);
    assert_eq!(app.name, "shop-app");
    assert_eq!(
        app.networks["shop_front"].ipv4_address,
        Some("10.5.0.9".parse().unwrap())
    );
    assert_eq!(
        app.secrets[0].source,
        Path::new("/etc/orc/compose.d/secrets/db_pw")
    );
    assert_eq!(app.secrets[0].secret_target(), "/run/secrets/db_pw");
    assert_eq!(app.secrets[1].secret_target(), "/etc/api.key");
    assert_eq!(app.configs[0].target, "/nginx");
    assert_eq!(
        app.env_file,
        [
            Path::new("/etc/orc/compose.d/app.env"),
            Path::new("/etc/orc/more.env")
        ]
    );
    assert!(app.privileged);
    assert_eq!(app.group_add, ["audio", "1000"]);
    assert_eq!(app.oom_score_adj, Some(-500));
    assert_eq!(app.pid.as_deref(), Some("host"));
    assert_eq!(app.cpuset.as_deref(), Some("0-1"));
    assert_eq!(app.memswap_limit.as_deref(), Some("-1"));
    assert_eq!(app.mem_swappiness, Some(0));
    assert_eq!(c.specs[1].network.as_deref(), Some("host"));
    assert!(c.specs[1].networks.is_empty());
    let names: Vec<&str> = c.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        ["shop_front", "shared-back"],
        "no default network: nobody uses it"
    );
    assert_eq!(c.networks[0].subnet.as_deref(), Some("10.5.0.0/24"));
    assert!(c.networks[1].internal);
}

#[test]
fn literal_secrets_are_noted_and_interpolated_ones_are_not() {
    let c = load(
        "services:\n  w:\n    image: i\n    environment:\n      DB_PASSWORD: hunter22\n      API_TOKEN: ${DB_PASSWORD}\n      USER_PASSWORD_FILE: /run/secrets/pw\n",
    )
    .unwrap();
    assert_eq!(c.literal_secrets, ["DB_PASSWORD"]);
    assert_eq!(c.specs[0].env["API_TOKEN"], "s3cret-pw");
    let c =
        load("services:\n  w:\n    image: i\n    environment: [SMTP_PASS=x1y2, TZ=UTC]\n").unwrap();
    assert_eq!(c.literal_secrets, ["SMTP_PASS"]);
}

#[test]
fn interpolation_and_short_forms() {
    let c = load(
        r#"
x-common: &common
  image: "busybox:${TAG:-latest}"
  restart: "no"
services:
  a:
    <<: *common
    environment:
      EMPTY_OR: "${EMPTY:-fallback}"
      DOLLAR: "$$HOME"
      NUM: 5
      FROM_ENV:
      MISSING:
    entrypoint: ["/bin/sh", "-c"]
    command: ["echo $$x"]
    expose: [80, "443/tcp"]
    tmpfs: /run
    extra_hosts: ["db:10.0.0.2"]
    volumes:
      - type: tmpfs
        target: /cache
  b:
    <<: *common
    depends_on: [a]
"#,
    )
    .unwrap();
    let a = &c.specs[0];
    assert_eq!(a.image, "busybox:1.36");
    assert_eq!(a.restart, crate::containers::spec::Restart::No);
    assert_eq!(a.env["EMPTY_OR"], "fallback");
    assert_eq!(a.env["DOLLAR"], "$HOME");
    assert_eq!(a.env["NUM"], "5");
    assert!(!a.env.contains_key("MISSING") && !a.env.contains_key("FROM_ENV"));
    assert_eq!(a.command.as_deref(), Some(&["echo $x".to_string()][..]));
    assert_eq!(a.expose, ["80", "443/tcp"]);
    assert_eq!(a.tmpfs, ["/run", "/cache"]);
    assert_eq!(c.specs[1].depends_on.names().collect::<Vec<_>>(), ["app-a"]);
}

#[test]
fn hostile_yaml_fails_cleanly() {
    for text in [
        "[1, 2]",
        "services: [a]",
        "services:\n  w: 1\n",
        "services:\n  w:\n    image: i\n    volumes: x\n",
        "services:\n  w:\n    image: i\n    environment: 5\n",
        "services:\n  w:\n    image: i\n    x-orc: [1]\n",
        "services:\n  w:\n    image: i\n    x-orc: {hooks: {store_data: 5}}\n",
        "\u{0}",
        "a: &a [*a]",
        "services:\n  ? [a]\n  : b\n",
    ] {
        let e = err(text);
        assert!(
            e.starts_with("/r/etc/orc/compose.d/app.yaml: "),
            "{text}: {e}"
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
    #[test]
    fn any_text_parses_or_fails_cleanly(text in "[ -~\n]{0,200}") {
        let _ = load(&text);
    }
}
