#!/usr/bin/env bash
# Shows orc's main job on a sample root in a temp dir (no real system path is
# touched): lays out an os-refresh-config base dir with a few realistic
# scripts, runs `orc run --root`, then `orc status`. KEEP=1 keeps the root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
build_release

root=$(mktemp -d /tmp/orc-demo.XXXXXX)
engine=
if timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    scripts/container-engine.sh start >/dev/null   # builds the busybox test image if missing
    engine=docker
fi
cleanup() {
    [ -z "$engine" ] || docker rm -f orc-demo-db orc-demo-web >/dev/null 2>&1 || true
    rm -rf "$root"
}
[ "${KEEP:-}" = 1 ] || trap cleanup EXIT
base=$root/usr/libexec/os-refresh-config
put() { # put MODE PATH  (content on stdin)
    mkdir -p "$(dirname "$2")"; cat > "$2"; chmod "$1" "$2"
}

put 644 "$base/environment.d/10-site" <<'S'
export SITE_NAME=demo-box
export DB_PASSWORD=s3cret-never-logged
S
put 755 "$base/pre-configure.d/10-hostname" <<'S'
#!/bin/sh
mkdir -p "$ORC_ROOT/etc" && echo "$SITE_NAME" > "$ORC_ROOT/etc/hostname"
echo "hostname set to $SITE_NAME"
S
put 755 "$base/configure.d/20-motd" <<'S'
#!/bin/sh
printf 'Welcome to %s (run %s)\n' "$SITE_NAME" "$ORC_RUN_ID" > "$ORC_ROOT/etc/motd"
echo "motd written"
S
put 755 "$base/configure.d/30-app-config" <<'S'
#!/bin/sh
mkdir -p "$ORC_ROOT/etc/app"
printf '[db]\npassword = %s\n' "$DB_PASSWORD" > "$ORC_ROOT/etc/app/app.ini"
chmod 600 "$ORC_ROOT/etc/app/app.ini"
echo "app config written"
S
put 755 "$base/configure.d/40-setup.sh" <<'S'
#!/bin/sh
echo "upstream would silently never run me; orc warns"
S
put 755 "$base/migration.d/10-schema" <<'S'
#!/bin/sh
mkdir -p "$ORC_ROOT/etc/app" && echo 3 > "$ORC_ROOT/etc/app/schema-version"
echo "schema at version 3"
S
put 755 "$base/post-configure.d/90-ready" <<'S'
#!/bin/sh
echo "box $SITE_NAME is ready"
S

if [ -n "$engine" ]; then
    image=${ORC_TEST_IMAGE:-orc-test/busybox:latest}
    put 644 "$root/etc/orc/orc.json" <<S
{"containers": {"engine": "docker", "infra_version": "1"}}
S
    put 644 "$root/etc/orc/containers.d/db.json" <<S
{"name": "orc-demo-db", "image": "$image", "command": ["sleep", "86400"], "init": true, "stop_timeout": 2,
 "volumes": [{"source": "data", "target": "/data"}],
 "hooks": {"store_data": ["sh", "-c", "date > /data/dump && echo stored a dump"],
           "restore_data": ["sh", "-c", "echo restoring the dump of \$(cat /data/dump)"]}}
S
    put 644 "$root/etc/orc/containers.d/web.json" <<S
{"name": "orc-demo-web", "image": "$image", "command": ["sleep", "86400"], "init": true, "stop_timeout": 2,
 "depends_on": ["orc-demo-db"], "env": {"SITE": "demo-box"}}
S
else
    echo "no container engine answers: the containers step is skipped in this demo" >&2
    echo "(scripts/container-engine.sh start installs and starts Docker, then run the demo again)" >&2
fi

step "image build: a service writes its initial state, orc registers and finalises it"
mkdir -p "$root/var/lib/app/db" "$root/etc/app"
echo "initial schema" > "$root/var/lib/app/db/schema.sql"
ln "$root/var/lib/app/db/schema.sql" "$root/var/lib/app/db/schema-hardlink.sql"
truncate -s 1G "$root/var/lib/app/db/sparse.ibd"
echo "host key" > "$root/etc/app/host_key"
"$ORC" --root "$root" state register --leave-symlink /var/lib/app
"$ORC" --root "$root" state register /etc/app/host_key
"$ORC" --root "$root" state finalise
"$ORC" --root "$root" state list

step "orc --root $root list"
"$ORC" --root "$root" list
step "orc --root $root run"
"$ORC" --root "$root" run
step "orc --root $root status"
"$ORC" --root "$root" status
step "what the boot left: state seeded on $root/mnt/state"
"$ORC" --root "$root" state list
ls -ls "$root/mnt/state/var/lib/app/db"
echo "the service changes its state" > "$root/mnt/state/var/lib/app/db/schema.sql"

step "second boot: existing state is never touched"
"$ORC" --root "$root" -q run >/dev/null
"$ORC" --root "$root" status | grep -E "^last run|state /"
cat "$root/mnt/state/var/lib/app/db/schema.sql"

if [ -n "$engine" ]; then
    step "a new infra version: every box container is recreated, data stored and restored"
    sed -i 's/"infra_version": "1"/"infra_version": "2"/' "$root/etc/orc/orc.json"
    "$ORC" --root "$root" run --skip-state 2>&1 | grep -E "container|stored|restoring"
    "$ORC" --root "$root" containers list
fi
