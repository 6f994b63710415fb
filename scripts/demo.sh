#!/usr/bin/env bash
# Shows orc's main job on a sample root in a temp dir (no real system path is
# touched): lays out an os-refresh-config base dir with a few realistic
# scripts, runs `orc run --root`, then `orc status`. KEEP=1 keeps the root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
build_release

root=$(mktemp -d /tmp/orc-demo.XXXXXX)
[ "${KEEP:-}" = 1 ] || trap 'rm -rf "$root"' EXIT
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
