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
    /// Regular file contents: length and hash.
    data: BTreeMap<PathBuf, (u64, u64)>,
}

/// A hash of a file's content in which holes and written zeros are alike: the offset and
/// bytes of every 4 KiB block that is not all zeros (holes skipped by SEEK_DATA).
fn content_hash(f: &fs::File) -> u64 {
    use std::hash::Hasher;
    use std::os::unix::fs::FileExt;
    let size = f.metadata().unwrap().len() as i64;
    let mut h = std::hash::DefaultHasher::new();
    let zero = [0u8; 4096];
    let mut buf = vec![0u8; 1 << 16];
    let mut off = 0i64;
    while off < size {
        let Ok(start) = nix::unistd::lseek(f, off, nix::unistd::Whence::SeekData) else {
            break;
        };
        let end = nix::unistd::lseek(f, start, nix::unistd::Whence::SeekHole).unwrap();
        let mut at = start & !4095;
        while at < end {
            let want = (((end - at) as usize + 4095) & !4095).min(buf.len());
            let n = f.read_at(&mut buf[..want], at as u64).unwrap();
            if n == 0 {
                break;
            }
            for (i, block) in buf[..n].chunks(4096).enumerate() {
                if block != &zero[..block.len()] {
                    h.write_i64(at + 4096 * i as i64);
                    h.write(block);
                }
            }
            at += n as i64;
        }
        off = end.max(at);
    }
    h.finish()
}

/// Everything about the tree at `top`, read by file descriptor one name at a time (so
/// trees deeper than PATH_MAX work); xattrs through `/proc/self/fd/N/NAME`.
fn snapshot(top: &Path) -> Snapshot {
    use nix::fcntl::{AtFlags, OFlag, openat};
    use nix::sys::stat::{Mode, fstatat};
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
    let mut snap = Snapshot {
        nodes: BTreeMap::new(),
        links: BTreeSet::new(),
        data: BTreeMap::new(),
    };
    let mut inodes: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let parent: OwnedFd = fs::File::open(top.parent().unwrap()).unwrap().into();
    // (dir fd, name, path under top); the top is named from its parent.
    let mut todo: Vec<(std::rc::Rc<OwnedFd>, std::ffi::OsString, PathBuf)> = vec![(
        std::rc::Rc::new(parent),
        top.file_name().unwrap().to_os_string(),
        PathBuf::new(),
    )];
    while let Some((dir, name, rel)) = todo.pop() {
        let dfd: BorrowedFd = dir.as_fd();
        let st = fstatat(dfd, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).unwrap();
        let via = PathBuf::from(format!("/proc/self/fd/{}", dfd.as_raw_fd())).join(&name);
        let mut xattrs = BTreeMap::new();
        for n in xattr::list(&via).unwrap() {
            if let Some(v) = xattr::get(&via, &n).unwrap() {
                xattrs.insert(n.as_bytes().to_vec(), v);
            }
        }
        let kind = st.st_mode & libc::S_IFMT;
        let mut target = None;
        match kind {
            libc::S_IFREG => {
                let fd = openat(
                    dfd,
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                )
                .unwrap();
                snap.data.insert(
                    rel.clone(),
                    (st.st_size as u64, content_hash(&fs::File::from(fd))),
                );
            }
            libc::S_IFLNK => {
                target = Some(PathBuf::from(
                    nix::fcntl::readlinkat(dfd, name.as_os_str()).unwrap(),
                ));
            }
            libc::S_IFDIR => {
                let sub = std::rc::Rc::new(
                    openat(dfd, name.as_os_str(), dir_flags, Mode::empty()).unwrap(),
                );
                let mut d = nix::dir::Dir::from_fd(sub.try_clone().unwrap()).unwrap();
                for e in d.iter() {
                    let e = e.unwrap();
                    let n = e.file_name().to_bytes();
                    if n != b"." && n != b".." {
                        let n = OsStr::from_bytes(n).to_os_string();
                        todo.push((sub.clone(), n.clone(), rel.join(&n)));
                    }
                }
            }
            _ => {}
        }
        if kind != libc::S_IFDIR && st.st_nlink > 1 {
            inodes
                .entry((st.st_dev, st.st_ino))
                .or_default()
                .push(rel.clone());
        }
        let node = Node {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: if kind == libc::S_IFDIR {
                0
            } else {
                st.st_size as u64
            },
            rdev: st.st_rdev,
            target,
            xattrs,
        };
        snap.nodes.insert(
            rel,
            (node, (st.st_mtime, st.st_mtime_nsec), st.st_blocks as u64),
        );
    }
    snap.links = inodes
        .into_values()
        .filter(|v| v.len() > 1)
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    snap
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
    // xattrs on a symlink and a FIFO (user.* is not allowed there; trusted.* is).
    xattr::set(
        top.join("abs-link"),
        "trusted.link-note",
        b"on the link itself",
    )
    .unwrap();
    xattr::set(top.join("fifo"), "trusted.fifo-note", b"f").unwrap();
    // File capabilities, which chown clears: one file owned by a user, one by root.
    w("cap-user", "c\n", 0o750, 1000, 1000);
    w("cap-root", "c\n", 0o755, 0, 0);
    for f in ["cap-user", "cap-root"] {
        run(Command::new("setcap")
            .arg("cap_net_raw+ep")
            .arg(top.join(f)));
    }
    // Names of 255 bytes: a file, a directory holding one, a symlink, a hardlink.
    let long = |c: &str| c.repeat(255);
    w(&long("f"), "long\n", 0o644, 0, 0);
    fs::create_dir(top.join(long("d"))).unwrap();
    w(
        &format!("{}/{}", long("d"), long("g")),
        "longer\n",
        0o600,
        1000,
        0,
    );
    symlink(long("f"), top.join(long("l"))).unwrap();
    fs::hard_link(top.join(long("f")), top.join(long("d")).join(long("h"))).unwrap();
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
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut killed_mid_copy = 0;
    // At least 12 random instants; more (up to 60) while too few land mid-copy. A kill
    // landed mid-copy when it left the copy's temporary name behind.
    for attempt in 0..60 {
        if attempt >= 12 && killed_mid_copy >= 4 {
            break;
        }
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
        if !status.success() && !leftovers(&state_root).is_empty() {
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
        let left = leftovers(&state_root);
        assert!(left.is_empty(), "{left:?}");
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

/// A tmpfs on `dir` (a second filesystem) for the life of the value.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "orc-test"])
            .arg(dir));
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Names under `dir` (recursively) that orc uses for temporary or set-aside copies.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.into_path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.as_bytes().starts_with(b".orc"))
        })
        .collect()
}

fn register(sb: &Sandbox, flag: bool, path: &str) {
    let mut c = sb.orc();
    c.args(["state", "register"]);
    if flag {
        c.arg("--leave-symlink");
    }
    expect_code(&c.arg(path).output().unwrap(), 0);
}

#[test]
fn registered_in_image_symlinks_are_moved_as_links_not_dropped_as_dangling() {
    let sb = Sandbox::new();
    // Targets that exist only inside the image, not on the host.
    fs::create_dir_all(sb.path("usr/share/orc-test-foo")).unwrap();
    fs::write(sb.path("usr/share/orc-test-foo/conf"), "c").unwrap();
    fs::create_dir_all(sb.path("srv/real")).unwrap();
    fs::create_dir_all(sb.path("srv/x")).unwrap();
    fs::create_dir_all(sb.path("etc")).unwrap();
    std::os::unix::fs::symlink("/usr/share/orc-test-foo", sb.path("etc/foo")).unwrap();
    std::os::unix::fs::symlink("../../srv/real", sb.path("srv/x/link")).unwrap();
    std::os::unix::fs::symlink("/usr/share/orc-test-bar", sb.path("etc/bar")).unwrap();
    register(&sb, true, "/etc/foo");
    register(&sb, false, "/srv/x/link");
    register(&sb, false, "/etc/bar");
    for _ in 0..2 {
        let o = sb.orc().args(["state", "finalise"]).output().unwrap();
        expect_code(&o, 0);
    }
    let pristine = |p: &str| sb.path("var/lib/use-ephemeral").join(p);
    assert_eq!(
        fs::read_link(pristine("etc/foo")).unwrap(),
        Path::new("/usr/share/orc-test-foo")
    );
    assert_eq!(
        fs::read_link(pristine("srv/x/link")).unwrap(),
        Path::new("../../srv/real")
    );
    assert_eq!(
        fs::read_link(sb.path("etc/foo")).unwrap(),
        Path::new("/mnt/state/etc/foo")
    );
    assert!(fs::symlink_metadata(sb.path("srv/x/link")).is_err());
    // A truly dangling one (unflagged) is left alone; the targets are untouched.
    assert_eq!(
        fs::read_link(sb.path("etc/bar")).unwrap(),
        Path::new("/usr/share/orc-test-bar")
    );
    assert!(fs::symlink_metadata(pristine("etc/bar")).is_err());
    assert_eq!(
        fs::read(sb.path("usr/share/orc-test-foo/conf")).unwrap(),
        b"c"
    );
    assert!(sb.path("srv/real").is_dir());
    // Seeding copies the links as links.
    expect_code(&sb.orc().args(["state", "seed"]).output().unwrap(), 0);
    assert_eq!(
        fs::read_link(sb.path("mnt/state/etc/foo")).unwrap(),
        Path::new("/usr/share/orc-test-foo")
    );
    assert_eq!(
        fs::read_link(sb.path("mnt/state/srv/x/link")).unwrap(),
        Path::new("../../srv/real")
    );
}

#[test]
fn registered_names_of_255_bytes_finalise_and_seed() {
    let sb = Sandbox::new();
    let long = "n".repeat(255);
    let top = sb.path("srv").join(&long);
    fs::create_dir_all(top.join("x".repeat(255))).unwrap();
    fs::write(top.join("x".repeat(255)).join("y".repeat(255)), "deep").unwrap();
    fs::write(sb.path("srv").join("f".repeat(255)), "a file").unwrap();
    let src = snapshot(&top);
    register(&sb, true, &format!("/srv/{long}"));
    register(&sb, false, &format!("/srv/{}", "f".repeat(255)));
    expect_code(&sb.orc().args(["state", "finalise"]).output().unwrap(), 0);
    let pristine = sb.path("var/lib/use-ephemeral/srv");
    compare(&src, &snapshot(&pristine.join(&long)), "pristine", true);
    let o = sb.orc().args(["state", "seed"]).output().unwrap();
    expect_code(&o, 0);
    compare(
        &src,
        &snapshot(&sb.path("mnt/state/srv").join(&long)),
        "state",
        true,
    );
    assert_eq!(
        fs::read(sb.path("mnt/state/srv").join("f".repeat(255))).unwrap(),
        b"a file"
    );
    assert!(
        leftovers(sb.root()).is_empty(),
        "{:?}",
        leftovers(sb.root())
    );
}

/// A chain of `levels` directories with 30-byte names (far past PATH_MAX), made by fd:
/// files with owners and modes on the way, a symlink with an xattr, a FIFO and a
/// hardlink between the bottom and the top.
fn deep_tree(top: &Path, levels: usize) {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::{Mode, mkdirat};
    use std::os::fd::{AsRawFd, OwnedFd};
    fs::create_dir_all(top).unwrap();
    let root: OwnedFd = fs::File::open(top).unwrap().into();
    let mut cur = root.try_clone().unwrap();
    let name = "level-of-a-very-deep-tree-0123";
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
    for i in 0..levels {
        mkdirat(&cur, name, Mode::from_bits_truncate(0o755)).unwrap();
        cur = openat(&cur, name, flags, Mode::empty()).unwrap();
        if i % 40 == 0 {
            let f = openat(
                &cur,
                "file",
                OFlag::O_CREAT | OFlag::O_WRONLY,
                Mode::from_bits_truncate(0o640),
            )
            .unwrap();
            nix::unistd::write(&f, format!("level {i}\n").as_bytes()).unwrap();
            nix::unistd::fchown(&f, Some(1000.into()), Some(1000.into())).unwrap();
        }
    }
    nix::unistd::symlinkat("../../..", &cur, "up").unwrap();
    let via = PathBuf::from(format!("/proc/self/fd/{}/up", cur.as_raw_fd()));
    xattr::set(&via, "trusted.deep", b"at the bottom").unwrap();
    nix::sys::stat::mknodat(
        &cur,
        "fifo",
        nix::sys::stat::SFlag::S_IFIFO,
        Mode::from_bits_truncate(0o600),
        0,
    )
    .unwrap();
    let f = openat(
        &cur,
        "bottom",
        OFlag::O_CREAT | OFlag::O_WRONLY,
        Mode::from_bits_truncate(0o4755),
    )
    .unwrap();
    nix::unistd::write(&f, b"the bottom\n").unwrap();
    nix::unistd::linkat(
        &cur,
        "bottom",
        &root,
        "top-link",
        nix::fcntl::AtFlags::empty(),
    )
    .unwrap();
}

#[test]
fn trees_deeper_than_path_max_finalise_across_filesystems_and_seed() {
    let sb = Sandbox::new();
    let _pristine_fs = Tmpfs::mount(&sb.path("var/lib/use-ephemeral"), "64m");
    let image = sb.path("var/lib/deep");
    deep_tree(&image, 200);
    let src = snapshot(&image);
    assert!(src.nodes.keys().any(|p| p.as_os_str().len() > 6000));
    register(&sb, true, "/var/lib/deep");
    let o = sb.orc().args(["state", "finalise"]).output().unwrap();
    expect_code(&o, 0);
    compare(
        &src,
        &snapshot(&sb.path("var/lib/use-ephemeral/var/lib/deep")),
        "pristine (tmpfs)",
        true,
    );
    assert_eq!(
        fs::read_link(&image).unwrap(),
        Path::new("/mnt/state/var/lib/deep")
    );
    let o = sb.orc().args(["state", "seed"]).output().unwrap();
    expect_code(&o, 0);
    compare(
        &src,
        &snapshot(&sb.path("mnt/state/var/lib/deep")),
        "state",
        true,
    );
    assert!(
        leftovers(sb.root()).is_empty(),
        "{:?}",
        leftovers(sb.root())
    );
}

/// Also under a umask that would mask most modes: the copy's modes do not depend on it.
#[test]
fn seeding_works_without_proc_mounted() {
    let sb = Sandbox::new();
    image_with_tree(&sb, "/var/lib/svc");
    let src = snapshot(&sb.path("var/lib/use-ephemeral/var/lib/svc"));
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"umask 077 && umount -l /proc && ! test -e /proc/self && exec "$0" "$@""#)
        .arg(bin())
        .arg("--root")
        .arg(sb.root())
        .args(["state", "seed"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap();
    expect_code(&o, 0);
    compare(
        &src,
        &snapshot(&sb.path("mnt/state/var/lib/svc")),
        "seeded without /proc",
        true,
    );
}

#[test]
fn a_default_acl_on_the_state_root_is_not_inherited_by_the_copy() {
    let sb = Sandbox::new();
    image_with_tree(&sb, "/var/lib/svc");
    let src = snapshot(&sb.path("var/lib/use-ephemeral/var/lib/svc"));
    fs::create_dir_all(sb.path("mnt/state")).unwrap();
    run(Command::new("setfacl")
        .args(["-d", "-m", "u:1000:rwx,g:50:rx"])
        .arg(sb.path("mnt/state")));
    expect_code(&sb.orc().arg("run").output().unwrap(), 0);
    let state = sb.path("mnt/state/var/lib/svc");
    compare(&src, &snapshot(&state), "seeded under a default ACL", true);
}

/// The image `sb` after `finalise` of `/var/lib/big` (flagged) crashed or succeeded.
#[track_caller]
fn check_finalised(sb: &Sandbox, reference: &Snapshot) {
    compare(
        reference,
        &snapshot(&sb.path("var/lib/use-ephemeral/var/lib/big")),
        "pristine after kill -9 and rerun",
        true,
    );
    assert_eq!(
        fs::read_link(sb.path("var/lib/big")).unwrap(),
        Path::new("/mnt/state/var/lib/big")
    );
    let left = leftovers(sb.path("var/lib").as_path());
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn kill_9_during_a_cross_device_finalise_then_rerun_completes_it() {
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = reference_dir.path().join("big");
    fs::create_dir(&reference).unwrap();
    big_tree(&reference);
    let ref_snap = snapshot(&reference);
    let sb = Sandbox::new();
    let _pristine_fs = Tmpfs::mount(&sb.path("var/lib/use-ephemeral"), "128m");
    fs::create_dir_all(sb.path("var/lib")).unwrap();
    register(&sb, true, "/var/lib/big");
    let reset = || {
        let image = sb.path("var/lib/big");
        if fs::symlink_metadata(&image).is_ok_and(|m| m.is_symlink()) {
            fs::remove_file(&image).unwrap();
        }
        let _ = fs::remove_dir_all(sb.path("var/lib/use-ephemeral/var"));
        run(Command::new("cp").arg("-a").arg(&reference).arg(&image));
    };
    reset();
    let t = Instant::now();
    expect_code(&sb.orc().args(["state", "finalise"]).output().unwrap(), 0);
    let mut clean = t.elapsed();
    check_finalised(&sb, &ref_snap);
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let (mut killed, mut resumed) = (0, 0);
    // At least 12 random instants; more (up to 60) while too few land mid-move, as on a
    // busy machine a finalise's time varies run to run.
    for attempt in 0..60 {
        if attempt >= 12 && killed >= 4 && resumed >= 2 {
            break;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        reset();
        let at = Duration::from_micros(seed % (clean.as_micros() as u64 + 1));
        let started = Instant::now();
        let mut child = sb
            .orc()
            .args(["state", "finalise"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill();
        if child.wait().unwrap().success() {
            // It was done before the kill: aim within the time it took.
            clean = clean.min(started.elapsed());
        } else {
            killed += 1;
        }
        if !leftovers(&sb.path("var/lib")).is_empty() {
            resumed += 1;
        }
        let o = sb.orc().args(["state", "finalise"]).output().unwrap();
        expect_code(&o, 0);
        check_finalised(&sb, &ref_snap);
    }
    assert!(
        killed >= 4 && resumed >= 2,
        "only {killed} kills landed mid-finalise, {resumed} left a move to resume \
         (a clean one took {clean:?})"
    );
}

#[test]
fn a_failed_cross_device_finalise_puts_the_original_back() {
    let sb = Sandbox::new();
    // Too small for the tree: the copy fails with ENOSPC.
    let _pristine_fs = Tmpfs::mount(&sb.path("var/lib/use-ephemeral"), "1m");
    let image = sb.path("var/lib/big");
    fs::create_dir_all(&image).unwrap();
    big_tree(&image);
    register(&sb, true, "/var/lib/big");
    let before = snapshot(&image);
    let o = sb.orc().args(["state", "finalise"]).output().unwrap();
    expect_code(&o, 1);
    assert!(
        err(&o).contains("finalising /var/lib/big:") && err(&o).contains("No space left"),
        "{}",
        err(&o)
    );
    compare(
        &before,
        &snapshot(&image),
        "the original after a failed move",
        true,
    );
    assert!(
        leftovers(sb.root()).is_empty(),
        "{:?}",
        leftovers(sb.root())
    );
    assert!(!sb.path("var/lib/use-ephemeral/var/lib/big").exists());
}

#[test]
fn every_bad_registry_exits_2_with_one_line_and_changes_nothing() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("var/lib/app")).unwrap();
    fs::write(sb.path("var/lib/app/f"), "x").unwrap();
    // Every writer has taken the lock once: its file exists (empty when free).
    expect_code(&sb.orc().args(["state", "seed"]).output().unwrap(), 0);
    let registry = sb.path("var/lib/use-ephemeral/stateful-paths");
    fs::create_dir_all(registry.parent().unwrap()).unwrap();
    let too_long = format!("/{};\n", "a/".repeat(2100));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "relative",
            b"/var/lib/app;true\nvar/lib/x;\n".to_vec(),
            "line 2: var/lib/x: not an absolute path",
        ),
        (
            "bad flag",
            b"/var/lib/app;yes\n".to_vec(),
            "line 1: flag \"yes\"",
        ),
        (
            "binary",
            b"\xff\xfe\x00\x01\x1b[2J;\n".to_vec(),
            "line 1: \u{fffd}\u{fffd}\\u{0}\\u{1}\\u{1b}[2J: contains a NUL byte",
        ),
        (
            "CRLF",
            b"/var/lib/app;true\r\n".to_vec(),
            "line 1: flag \"true\\r\"",
        ),
        ("dots", b"/var/lib/../etc;\n".to_vec(), "'.' or '..'"),
        (
            "in the state root",
            b"/mnt/state/x;\n".to_vec(),
            "inside /mnt/state",
        ),
        ("too long", too_long.into_bytes(), "the limit is 4095"),
        (
            "long name",
            format!("/{};\n", "n".repeat(256)).into_bytes(),
            "256 bytes",
        ),
    ];
    let commands: &[&[&str]] = &[
        &["state", "finalise"],
        &["state", "seed"],
        &["state", "list"],
        &["state", "register", "/var/lib/new"],
        &["run"],
    ];
    let check = |what: &str, want: &str| {
        for cmd in commands {
            let before = snapshot(sb.root());
            let o = sb.orc().args(*cmd).output().unwrap();
            expect_code(&o, 2);
            let e = err(&o);
            assert_eq!(e.lines().count(), 1, "{what}, {cmd:?}: {e}");
            assert!(
                e.contains("stateful-paths") && e.contains(want),
                "{what}, {cmd:?}: {e}"
            );
            let mut after = snapshot(sb.root());
            // The lock file: taken (and emptied again) by a writer before it reads.
            let lock = PathBuf::from("run/os-refresh-config.lock");
            assert_eq!(after.data[&lock].0, 0);
            after.nodes.get_mut(&lock).unwrap().1 = before.nodes[&lock].1;
            compare(&before, &after, &format!("{what}, {cmd:?}"), true);
        }
    };
    for (what, text, want) in &cases {
        fs::write(&registry, text).unwrap();
        check(what, want);
    }
    fs::remove_file(&registry).unwrap();
    std::os::unix::fs::symlink("/nowhere", &registry).unwrap();
    check("dangling symlink", "a dangling symlink");
    fs::remove_file(&registry).unwrap();
    fs::create_dir(&registry).unwrap();
    check("directory", "not a regular file (a directory)");
    fs::remove_dir(&registry).unwrap();
    nix::unistd::mkfifo(&registry, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    check("FIFO", "not a regular file (a FIFO)");
}
