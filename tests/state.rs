//! State relocation through the binary: registration, finalise, and seeding
//! compared entry by entry with the source and with real `rsync -aHAX --sparse`;
//! crash safety under kill -9; existing state never touched.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Everything rsync -aHAX keeps about one node (mtime separately: see `compare`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    rdev: u64,
    target: Option<PathBuf>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

#[derive(Debug)]
struct Snapshot {
    nodes: BTreeMap<PathBuf, (Node, (i64, i64), u64)>,
    /// Sets of names sharing an inode.
    links: BTreeSet<Vec<PathBuf>>,
    /// Regular file contents.
    data: BTreeMap<PathBuf, Vec<u8>>,
}

fn snapshot(top: &Path) -> Snapshot {
    let mut nodes = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    let mut data = BTreeMap::new();
    for e in walkdir::WalkDir::new(top).follow_links(false) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(top).unwrap().to_path_buf();
        let m = fs::symlink_metadata(e.path()).unwrap();
        let mut xattrs = BTreeMap::new();
        for n in xattr::list(e.path()).unwrap() {
            if let Some(v) = xattr::get(e.path(), &n).unwrap() {
                xattrs.insert(n.as_bytes().to_vec(), v);
            }
        }
        let kind = m.mode() & libc::S_IFMT;
        if kind == libc::S_IFREG {
            data.insert(rel.clone(), fs::read(e.path()).unwrap());
        }
        if kind != libc::S_IFDIR && m.nlink() > 1 {
            inodes
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(rel.clone());
        }
        let node = Node {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: if kind == libc::S_IFDIR { 0 } else { m.size() },
            rdev: m.rdev(),
            target: (kind == libc::S_IFLNK).then(|| fs::read_link(e.path()).unwrap()),
            xattrs,
        };
        nodes.insert(rel, (node, (m.mtime(), m.mtime_nsec()), m.blocks()));
    }
    let links = inodes
        .into_values()
        .filter(|v| v.len() > 1)
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    Snapshot { nodes, links, data }
}

/// `copy` matches `src`: every field, hardlink groups, content, no filled holes.
/// `mtimes` also checks symlink and device mtimes (rsync 3.5 does not keep those).
#[track_caller]
fn compare(src: &Snapshot, copy: &Snapshot, what: &str, all_mtimes: bool) {
    let names = |s: &Snapshot| s.nodes.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(src), names(copy), "{what}: names");
    for (rel, (n, mt, blocks)) in &src.nodes {
        let (cn, cmt, cblocks) = &copy.nodes[rel];
        assert_eq!(n, cn, "{what}: {rel:?}");
        let special = n.kind == libc::S_IFLNK || n.kind == libc::S_IFCHR || n.kind == libc::S_IFBLK;
        if all_mtimes || !special {
            assert_eq!(mt, cmt, "{what}: mtime of {rel:?}");
        }
        if n.kind == libc::S_IFREG {
            assert!(
                cblocks <= &(blocks + 8),
                "{what}: {rel:?} holes filled: {cblocks} > {blocks} blocks"
            );
        }
    }
    assert_eq!(src.links, copy.links, "{what}: hardlink groups");
    assert!(src.data == copy.data, "{what}: file contents differ");
}

fn set_times(p: &Path, secs: i64, nsec: i64) {
    let t = nix::sys::time::TimeSpec::new(secs, nsec);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

fn run(cmd: &mut Command) {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", err(&o));
}

/// A tree with every kind of entry orc must keep.
fn build_tree(top: &Path) {
    use std::os::unix::fs::{chown, symlink};
    fs::create_dir_all(top.join("sub/deeper")).unwrap();
    fs::create_dir_all(top.join("empty")).unwrap();
    fs::create_dir_all(top.join("acl-dir")).unwrap();
    fs::create_dir_all(top.join("sticky")).unwrap();
    let w = |rel: &str, text: &str, mode: u32, uid: u32, gid: u32| {
        let p = top.join(rel);
        fs::write(&p, text).unwrap();
        chown(&p, Some(uid), Some(gid)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    w("plain", "hello\n", 0o644, 0, 0);
    w("secret", "k3y\n", 0o600, 1000, 1000);
    w("setuid-bin", "#!/bin/sh\n", 0o4755, 0, 0);
    w("setgid-bin", "#!/bin/sh\n", 0o2750, 0, 50);
    w("sub/nobody", "n\n", 0o640, 65534, 65534);
    w("sub/deeper/linked", "shared inode\n", 0o644, 1000, 0);
    fs::hard_link(top.join("sub/deeper/linked"), top.join("linked-top")).unwrap();
    fs::hard_link(top.join("sub/deeper/linked"), top.join("sub/linked-2")).unwrap();
    fs::set_permissions(top.join("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    chown(top.join("sub"), Some(1000), Some(1000)).unwrap();
    // Odd names.
    w("with space", "s\n", 0o644, 0, 0);
    w("new\nline", "nl\n", 0o644, 0, 0);
    let bad = top.join(OsStr::from_bytes(b"bytes-\xff\xfe"));
    fs::write(&bad, "nonutf8\n").unwrap();
    // Sparse: a hole at the start and one in the middle, 64 MiB apparent.
    {
        use std::os::unix::fs::FileExt;
        let f = fs::File::create(top.join("sparse")).unwrap();
        f.write_all_at(b"middle", 8 << 20).unwrap();
        f.write_all_at(b"end", (64 << 20) - 3).unwrap();
    }
    // Special files.
    nix::unistd::mkfifo(
        &top.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o620),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &top.join("null-dev"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    drop(std::os::unix::net::UnixListener::bind(top.join("socket")).unwrap());
    // Symlinks: absolute, relative, dangling; owned by someone.
    symlink("/etc/hostname", top.join("abs-link")).unwrap();
    symlink("sub/nobody", top.join("rel-link")).unwrap();
    symlink("../nowhere/at/all", top.join("sub/dangling")).unwrap();
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &top.join("rel-link"),
        Some(nix::unistd::Uid::from_raw(1000)),
        Some(nix::unistd::Gid::from_raw(1000)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
    // xattrs: user, trusted, ACLs (access and default), an SELinux label where allowed.
    xattr::set(top.join("plain"), "user.comment", b"kept").unwrap();
    xattr::set(top.join("sub"), "user.dir-note", b"dir too").unwrap();
    xattr::set(top.join("secret"), "trusted.orc-test", b"\x00\x01binary").unwrap();
    run(Command::new("setfacl")
        .args(["-m", "u:1000:rw,g:50:r"])
        .arg(top.join("plain")));
    run(Command::new("setfacl")
        .args(["-d", "-m", "u:1000:rwx"])
        .arg(top.join("acl-dir")));
    w("acl-dir/inherits", "i\n", 0o644, 0, 0);
    let _ = xattr::set(
        top.join("setuid-bin"),
        "security.selinux",
        b"system_u:object_r:bin_t:s0\0",
    );
    // ns times everywhere, directories last.
    let mut all: Vec<PathBuf> = walkdir::WalkDir::new(top)
        .follow_links(false)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_times(p, 1_500_000_000 + i as i64 * 3600, 123_456_789 + i as i64);
    }
}

/// Registers `path` (with a symlink), builds the tree there and finalises.
fn image_with_tree(sb: &Sandbox, path: &str) {
    let top = sb.root().join(path.trim_start_matches('/'));
    fs::create_dir_all(top.parent().unwrap()).unwrap();
    fs::create_dir(&top).unwrap();
    build_tree(&top);
    let o = sb
        .orc()
        .args(["state", "register", "--leave-symlink", path])
        .output()
        .unwrap();
    expect_code(&o, 0);
    let o = sb.orc().args(["state", "finalise"]).output().unwrap();
    expect_code(&o, 0);
}

#[test]
fn seeding_keeps_everything_rsync_ahax_keeps_and_more() {
    let sb = Sandbox::new();
    image_with_tree(&sb, "/var/lib/svc");
    let pristine = sb.path("var/lib/use-ephemeral/var/lib/svc");
    let src = snapshot(&pristine);
    assert!(src.nodes.len() >= 25, "{}", src.nodes.len());
    assert!(src.nodes.values().any(|(n, ..)| {
        n.xattrs
            .keys()
            .any(|k| k.starts_with(b"system.posix_acl_default"))
    }));
    let o = sb.orc().args(["run"]).output().unwrap();
    expect_code(&o, 0);
    let state = sb.path("mnt/state/var/lib/svc");
    let ours = snapshot(&state);
    compare(&src, &ours, "orc vs source", true);
    let sparse = &ours.nodes[Path::new("sparse")];
    assert!(
        sparse.2 * 512 < 1 << 20,
        "sparse copy allocates {} blocks",
        sparse.2
    );

    let rsynced = sb.path("rsync-copy");
    run(Command::new("rsync")
        .args(["-aHAX", "--sparse"])
        .arg(format!("{}/", pristine.display()))
        .arg(&rsynced));
    let theirs = snapshot(&rsynced);
    compare(&theirs, &ours, "orc vs rsync -aHAX --sparse", false);

    let r = sb.last_report();
    let s = &r["state"][0];
    assert_eq!(s["path"], "/var/lib/svc");
    assert_eq!(s["outcome"], "seeded");
    assert!(s["files"].as_u64().unwrap() >= 10);
    assert!(s["bytes"].as_u64().unwrap() > 0);
    assert!(s["duration_ms"].as_f64().unwrap() > 0.0);
    // The image path is now a symlink into the state root.
    assert_eq!(
        fs::read_link(sb.path("var/lib/svc")).unwrap(),
        Path::new("/mnt/state/var/lib/svc")
    );
}

#[test]
fn finalise_mirrors_parents_and_is_idempotent() {
    let sb = Sandbox::new();
    let parent = sb.path("srv/app");
    fs::create_dir_all(parent.join("data")).unwrap();
    fs::write(parent.join("data/db"), "x").unwrap();
    std::os::unix::fs::chown(&parent, Some(1000), Some(1001)).unwrap();
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o750)).unwrap();
    set_times(&parent, 1_400_000_000, 42);
    sb.orc()
        .args(["state", "register", "--leave-symlink", "/srv/app/data"])
        .output()
        .unwrap();
    // A path registered with nothing there, flagged: it gets its symlink.
    sb.orc()
        .args(["state", "register", "--leave-symlink", "/var/cache/empty"])
        .output()
        .unwrap();
    fs::create_dir_all(sb.path("var/cache")).unwrap();
    // A dangling symlink at a flagged path is replaced.
    fs::create_dir_all(sb.path("var/log")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/old", sb.path("var/log/app")).unwrap();
    sb.orc()
        .args(["state", "register", "--leave-symlink", "/var/log/app"])
        .output()
        .unwrap();
    set_times(&parent, 1_400_000_000, 42);
    let o = sb.orc().args(["state", "finalise"]).output().unwrap();
    expect_code(&o, 0);
    let mirrored = fs::metadata(sb.path("var/lib/use-ephemeral/srv/app")).unwrap();
    assert_eq!(
        (mirrored.uid(), mirrored.gid(), mirrored.mode() & 0o7777),
        (1000, 1001, 0o750)
    );
    assert_eq!(
        (mirrored.mtime(), mirrored.mtime_nsec()),
        (1_400_000_000, 42)
    );
    assert_eq!(
        fs::read(sb.path("var/lib/use-ephemeral/srv/app/data/db")).unwrap(),
        b"x"
    );
    for (p, t) in [
        ("srv/app/data", "/mnt/state/srv/app/data"),
        ("var/cache/empty", "/mnt/state/var/cache/empty"),
        ("var/log/app", "/mnt/state/var/log/app"),
    ] {
        assert_eq!(fs::read_link(sb.path(p)).unwrap(), Path::new(t), "{p}");
    }
    let o = sb.orc().args(["state", "finalise"]).output().unwrap();
    expect_code(&o, 0);
    assert!(
        err(&o).contains("/srv/app/data: already finalised"),
        "{}",
        err(&o)
    );
    let o = sb.orc().args(["state", "list", "--json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list[0]["pristine"], true);
    assert_eq!(list[0]["symlink_ok"], true);
    assert_eq!(list[0]["state"], false);
}

#[test]
fn existing_state_is_never_modified() {
    let sb = Sandbox::new();
    let svc = sb.path("var/lib/app");
    fs::create_dir_all(&svc).unwrap();
    for f in ["keep", "edit", "delete", "chmod"] {
        fs::write(svc.join(f), format!("pristine {f}\n")).unwrap();
    }
    sb.orc()
        .args(["state", "register", "/var/lib/app"])
        .output()
        .unwrap();
    expect_code(&sb.orc().args(["state", "finalise"]).output().unwrap(), 0);
    expect_code(&sb.orc().arg("run").output().unwrap(), 0);
    let state = sb.path("mnt/state/var/lib/app");
    fs::write(state.join("edit"), "edited by the service\n").unwrap();
    fs::remove_file(state.join("delete")).unwrap();
    fs::set_permissions(state.join("chmod"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(state.join("new"), "created by the service\n").unwrap();
    let before = snapshot(&state);
    // A newer image's pristine copy differs: state still wins.
    fs::write(
        sb.path("var/lib/use-ephemeral/var/lib/app/edit"),
        "new image\n",
    )
    .unwrap();
    for _ in 0..2 {
        expect_code(&sb.orc().arg("run").output().unwrap(), 0);
        compare(&before, &snapshot(&state), "second boot", true);
        assert_eq!(sb.last_report()["state"][0]["outcome"], "present");
    }
    let o = sb.orc().args(["state", "seed"]).output().unwrap();
    expect_code(&o, 0);
    assert_eq!(out(&o), "/var/lib/app: present\n");
    compare(&before, &snapshot(&state), "orc state seed", true);
}

#[test]
fn bad_registrations_exit_2_and_leave_the_registry_unchanged() {
    let sb = Sandbox::new();
    expect_code(
        &sb.orc()
            .args(["state", "register", "/var/lib/ok"])
            .output()
            .unwrap(),
        0,
    );
    let registry = sb.path("var/lib/use-ephemeral/stateful-paths");
    let before = fs::read(&registry).unwrap();
    assert_eq!(before, b"/var/lib/ok;\n");
    let cases: &[(&[u8], &str)] = &[
        (b"relative/path", "not an absolute path"),
        (b"/var/lib/trailing/", "ends with '/'"),
        (b"/var/../etc", "'.' or '..'"),
        (b"/var//lib", "empty component"),
        (b"/", "root directory"),
        (b"/var/lib/a;true", "';'"),
        (b"/var/lib/new\nline", "newline"),
        (b"/mnt/state/x", "inside /mnt/state"),
        (b"/var/lib/use-ephemeral/x", "inside /var/lib/use-ephemeral"),
        (b"/var", "contains /var/lib/use-ephemeral"),
    ];
    for (path, why) in cases {
        let o = sb
            .orc()
            .args(["state", "register"])
            .arg(OsStr::from_bytes(path))
            .output()
            .unwrap();
        expect_code(&o, 2);
        let e = err(&o);
        assert_eq!(
            e.lines().count(),
            1,
            "one line, even for a newline in the path: {e}"
        );
        assert!(
            e.contains("cannot register") && e.contains(why),
            "{path:?}: {e}"
        );
        assert_eq!(
            fs::read(&registry).unwrap(),
            before,
            "registry changed by {path:?}"
        );
    }
    // Several paths: one bad one means none is added.
    let o = sb
        .orc()
        .args(["state", "register", "/var/lib/good", "bad"])
        .output()
        .unwrap();
    expect_code(&o, 2);
    assert_eq!(fs::read(&registry).unwrap(), before);
    // Idempotent, and --leave-symlink upgrades; legacy lines read as flagged.
    for _ in 0..2 {
        expect_code(
            &sb.orc()
                .args(["state", "register", "/var/lib/ok"])
                .output()
                .unwrap(),
            0,
        );
    }
    assert_eq!(fs::read(&registry).unwrap(), before);
    expect_code(
        &sb.orc()
            .args(["state", "register", "--leave-symlink", "/var/lib/ok"])
            .output()
            .unwrap(),
        0,
    );
    assert_eq!(fs::read(&registry).unwrap(), b"/var/lib/ok;true\n");
    fs::write(&registry, "/var/lib/ok;true\n/var/legacy/path\n").unwrap();
    expect_code(
        &sb.orc()
            .args(["state", "register", "/etc/x"])
            .output()
            .unwrap(),
        0,
    );
    assert_eq!(
        fs::read(&registry).unwrap(),
        b"/var/lib/ok;true\n/var/legacy/path;true\n/etc/x;\n"
    );
    // The register-state-path personality.
    let link = sb.path("register-state-path");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let o = Command::new(&link)
        .env("ORC_ROOT", sb.root())
        .args(["--leave-symlink", "/etc/y"])
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert!(
        fs::read_to_string(&registry)
            .unwrap()
            .ends_with("/etc/y;true\n")
    );
    let o = Command::new(&link)
        .env("ORC_ROOT", sb.root())
        .arg("etc/z")
        .output()
        .unwrap();
    expect_code(&o, 2);
}

#[test]
fn a_corrupt_registry_stops_the_run_before_anything() {
    let sb = Sandbox::new();
    sb.script("configure.d", "10-a", "echo must-not-run");
    let registry = sb.path("var/lib/use-ephemeral/stateful-paths");
    write_mode(&registry, "/var/lib/ok;true\nvar/lib/relative;\n", 0o644);
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 2);
    assert_eq!(out(&o), "");
    assert!(
        err(&o).contains("stateful-paths: line 2: var/lib/relative: not an absolute path"),
        "{}",
        err(&o)
    );
    assert!(!sb.path("var/lib/orc").exists());
}

#[test]
fn one_failing_path_does_not_stop_the_others_and_symlinks_are_not_followed_out() {
    let sb = Sandbox::new();
    for p in ["var/lib/a", "var/lib/b", "srv/c"] {
        fs::create_dir_all(sb.path(p)).unwrap();
        fs::write(sb.path(p).join("f"), p).unwrap();
    }
    for p in ["/var/lib/a", "/var/lib/b", "/srv/c"] {
        sb.orc().args(["state", "register", p]).output().unwrap();
    }
    expect_code(&sb.orc().args(["state", "finalise"]).output().unwrap(), 0);
    // Someone made the state parent of /var/lib/b a symlink pointing out of the state root.
    let outside = sb.path("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(sb.path("mnt/state/var")).unwrap();
    std::os::unix::fs::symlink(&outside, sb.path("mnt/state/var/lib")).unwrap();
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 1);
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote through the symlink"
    );
    let r = sb.last_report();
    let outcomes: Vec<(&str, &str)> = r["state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["path"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("/var/lib/a", "error"),
            ("/var/lib/b", "error"),
            ("/srv/c", "seeded")
        ]
    );
    assert!(
        r["state"][0]["error"]
            .as_str()
            .unwrap()
            .contains("refusing to follow")
    );
    assert_eq!(r["steps"][0]["result"], "failed");
    assert_eq!(fs::read(sb.path("mnt/state/srv/c/f")).unwrap(), b"srv/c");
}

#[test]
fn nothing_registered_or_nothing_pristine_is_fine() {
    let sb = Sandbox::new();
    expect_code(&sb.orc().arg("run").output().unwrap(), 0);
    assert_eq!(sb.last_report()["steps"][0]["note"], "nothing registered");
    sb.orc()
        .args(["state", "register", "/var/lib/never-built"])
        .output()
        .unwrap();
    expect_code(&sb.orc().arg("run").output().unwrap(), 0);
    assert_eq!(sb.last_report()["state"][0]["outcome"], "no-pristine");
}

#[test]
fn require_mount_refuses_a_state_root_on_the_root_filesystem() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("var/lib/a")).unwrap();
    sb.orc()
        .args(["state", "register", "/var/lib/a"])
        .output()
        .unwrap();
    expect_code(&sb.orc().args(["state", "finalise"]).output().unwrap(), 0);
    sb.config(r#"{"state": {"require_mount": true}}"#);
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 1);
    assert!(
        err(&o).contains("not a mounted filesystem of its own"),
        "{}",
        err(&o)
    );
    assert!(!sb.path("mnt/state/var").exists());
}

/// A tree big enough that a kill lands mid-copy: 1500 files in 30 dirs, hardlinks, a sparse file.
fn big_tree(top: &Path) {
    for d in 0..30 {
        let dir = top.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..50 {
            let body = vec![b'a' + (f % 26) as u8; 1000 + 97 * f];
            fs::write(dir.join(format!("f{f:03}")), body).unwrap();
        }
        fs::hard_link(dir.join("f000"), top.join(format!("hl{d:02}"))).unwrap();
    }
    let f = fs::File::create(top.join("sparse")).unwrap();
    f.set_len(256 << 20).unwrap();
}

/// A sandbox whose image registered and finalised `/var/lib/big` (a [`big_tree`]).
fn finalised_big_tree() -> Sandbox {
    let sb = Sandbox::new();
    let top = sb.path("var/lib/big");
    fs::create_dir_all(&top).unwrap();
    big_tree(&top);
    let o = sb
        .orc()
        .args(["state", "register", "/var/lib/big"])
        .output()
        .unwrap();
    expect_code(&o, 0);
    expect_code(&sb.orc().args(["state", "finalise"]).output().unwrap(), 0);
    sb
}

#[test]
fn kill_9_at_random_instants_then_rerun_gives_a_clean_copy() {
    let sb = finalised_big_tree();
    let src = snapshot(&sb.path("var/lib/use-ephemeral/var/lib/big"));
    let state_root = sb.path("mnt/state");
    let t = Instant::now();
    expect_code(&sb.orc().args(["state", "seed"]).output().unwrap(), 0);
    let clean = t.elapsed();
    fs::remove_dir_all(&state_root).unwrap();
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut killed_mid_copy = 0;
    for _ in 0..12 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = Duration::from_micros(seed % (clean.as_micros() as u64 + 1));
        let mut child = sb
            .orc()
            .args(["state", "seed"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill();
        let status = child.wait().unwrap();
        if !status.success() {
            killed_mid_copy += 1;
        }
        let o = sb.orc().args(["state", "seed"]).output().unwrap();
        expect_code(&o, 0);
        compare(
            &src,
            &snapshot(&state_root.join("var/lib/big")),
            "after kill -9 and rerun",
            true,
        );
        let leftovers: Vec<_> = walkdir::WalkDir::new(&state_root)
            .into_iter()
            .map(|e| e.unwrap().into_path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".orc-")
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        fs::remove_dir_all(&state_root).unwrap();
    }
    assert!(
        killed_mid_copy >= 4,
        "only {killed_mid_copy} kills landed mid-copy (clean copy took {clean:?})"
    );
}

#[test]
fn long_copies_report_progress_to_the_log_and_systemd() {
    let sb = finalised_big_tree();
    let sock_path = sb.path("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    let o = sb
        .orc()
        .env("NOTIFY_SOCKET", &sock_path)
        .env("ORC_PROGRESS_MS", "1")
        .arg("run")
        .output()
        .unwrap();
    expect_code(&o, 0);
    let progress = err(&o)
        .lines()
        .filter(|l| l.contains("seeding /var/lib/big:") && l.contains("files"))
        .count();
    assert!(progress >= 2, "{}", err(&o));
    let msgs = datagrams(&sock);
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("STATUS=seeding /var/lib/big:") && m.contains("MiB")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.starts_with("EXTEND_TIMEOUT_USEC=")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.trim_end() == "STATUS=pre-configure/01-orc-state"),
        "{msgs:?}"
    );
}
