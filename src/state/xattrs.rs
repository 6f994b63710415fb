//! Extended attributes of one node, reached either by an open file descriptor
//! or by a directory fd and one entry name, never following a symlink. The
//! second form uses Linux 6.13's `*xattrat` calls; on older kernels it falls
//! back to `/proc/self/fd/N/NAME` (one entry name, never a longer path), so
//! only symlinks, FIFOs, sockets and device nodes on an old kernel without
//! `/proc` cannot have their xattrs copied.
//!
//! The `*xattrat` calls have no wrapper in nix or rustix yet: those raw
//! syscalls are `unsafe` (pointers into buffers this module owns); every other
//! call goes through rustix.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU8, Ordering};

use nix::errno::Errno;
use rustix::fs::XattrFlags;

/// A node whose xattrs are read or written.
#[derive(Debug, Clone, Copy)]
pub enum Node<'a> {
    /// An open file or directory (not `O_PATH`).
    Fd(BorrowedFd<'a>),
    /// The entry `name` of the directory `dir`, not followed if it is a symlink.
    At(BorrowedFd<'a>, &'a CStr),
}

/// Name and value of every xattr of a node.
pub type Xattrs = Vec<(CString, Vec<u8>)>;

/// The xattr that `chown` clears: it must be set after the owner.
pub const CAPABILITY: &[u8] = b"security.capability";

// The `*xattrat` calls (Linux 6.13) share one number on every architecture
// that uses the generic syscall table.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
))]
mod nr {
    pub const SET: Option<libc::c_long> = Some(463);
    pub const GET: Option<libc::c_long> = Some(464);
    pub const LIST: Option<libc::c_long> = Some(465);
    pub const REMOVE: Option<libc::c_long> = Some(466);
}
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)))]
mod nr {
    pub const SET: Option<libc::c_long> = None;
    pub const GET: Option<libc::c_long> = None;
    pub const LIST: Option<libc::c_long> = None;
    pub const REMOVE: Option<libc::c_long> = None;
}

/// `struct xattr_args` of `getxattrat`/`setxattrat`.
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// 0 = not tried yet, 1 = the kernel has the `*xattrat` calls, 2 = it does not.
static XATTRAT: AtomicU8 = AtomicU8::new(0);

/// Runs `call` (a raw syscall returning -1/errno) as a nix result.
fn ret(r: libc::c_long) -> nix::Result<usize> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// A rustix result as a nix one (the same errno).
fn rx<T>(r: rustix::io::Result<T>) -> nix::Result<T> {
    r.map_err(|e| Errno::from_raw(e.raw_os_error()))
}

/// Tries the `*xattrat` form; `None` when the kernel lacks it (then the fallback runs).
fn try_at(
    nr: Option<libc::c_long>,
    mut call: impl FnMut(libc::c_long) -> libc::c_long,
) -> Option<nix::Result<usize>> {
    let nr = nr?;
    if XATTRAT.load(Ordering::Relaxed) == 2 {
        return None;
    }
    loop {
        match ret(call(nr)) {
            Err(Errno::ENOSYS) => {
                XATTRAT.store(2, Ordering::Relaxed);
                return None;
            }
            Err(Errno::EINTR) => {}
            // A seccomp filter that predates the calls may answer EPERM: try the fallback.
            Err(Errno::EPERM) if XATTRAT.load(Ordering::Relaxed) == 0 => return None,
            r => {
                XATTRAT.store(1, Ordering::Relaxed);
                return Some(r);
            }
        }
    }
}

/// `/proc/self/fd/N/NAME`, for the fallback (`l*xattr` does not follow NAME).
fn proc_path(dir: BorrowedFd, name: &CStr) -> CString {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name.to_bytes());
    CString::new(p).expect("an entry name has no NUL")
}

/// A fallback that failed because `/proc` is not mounted: the kernel lacks the
/// `*xattrat` calls too, so nothing can reach the node's xattrs (see [`explain`]).
fn no_proc(e: Errno) -> Errno {
    if e == Errno::ENOENT && std::fs::metadata("/proc/self/fd").is_err() {
        Errno::ENOSYS
    } else {
        e
    }
}

/// An xattr error in words.
pub fn explain(e: Errno) -> String {
    if e == Errno::ENOSYS {
        "the xattrs of a symlink or special file need Linux 6.13 (getxattrat) or /proc mounted"
            .into()
    } else {
        std::io::Error::from(e).to_string()
    }
}

fn raw_list(node: Node, buf: &mut [u8]) -> nix::Result<usize> {
    let (ptr, len) = (buf.as_mut_ptr().cast::<libc::c_char>(), buf.len());
    match node {
        Node::Fd(fd) => rx(rustix::fs::flistxattr(fd, buf)),
        Node::At(dir, name) => {
            let at = try_at(nr::LIST, |nr| {
                // SAFETY: name is NUL-terminated, buf valid for len bytes.
                unsafe {
                    libc::syscall(
                        nr,
                        dir.as_raw_fd(),
                        name.as_ptr(),
                        libc::AT_SYMLINK_NOFOLLOW,
                        ptr,
                        len,
                    )
                }
            });
            at.unwrap_or_else(|| {
                rx(rustix::fs::llistxattr(proc_path(dir, name).as_c_str(), buf)).map_err(no_proc)
            })
        }
    }
}

/// `getxattrat` or `setxattrat` (`nr`) of `dir/name` (not followed): the value's address
/// and size go in a `struct xattr_args`. `None` when the kernel lacks the call.
fn value_at(
    nr: Option<libc::c_long>,
    dir: BorrowedFd,
    name: &CStr,
    attr: &CStr,
    value: u64,
    len: usize,
) -> Option<nix::Result<usize>> {
    let args = XattrArgs {
        value,
        size: len.min(u32::MAX as usize) as u32,
        flags: 0,
    };
    try_at(nr, |nr| {
        // SAFETY: every pointer is valid; args points at a struct of the size given, and
        // `value` at `len` bytes the caller owns.
        unsafe {
            libc::syscall(
                nr,
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
                attr.as_ptr(),
                std::ptr::from_ref(&args),
                std::mem::size_of::<XattrArgs>(),
            )
        }
    })
}

fn raw_get(node: Node, attr: &CStr, buf: &mut [u8]) -> nix::Result<usize> {
    let (ptr, len) = (buf.as_mut_ptr(), buf.len());
    match node {
        Node::Fd(fd) => rx(rustix::fs::fgetxattr(fd, attr, buf)),
        Node::At(dir, name) => {
            let at = value_at(nr::GET, dir, name, attr, ptr as u64, len);
            at.unwrap_or_else(|| {
                rx(rustix::fs::lgetxattr(
                    proc_path(dir, name).as_c_str(),
                    attr,
                    buf,
                ))
                .map_err(no_proc)
            })
        }
    }
}

/// Sets `attr` to `value` (created or replaced).
pub fn set(node: Node, attr: &CStr, value: &[u8]) -> nix::Result<()> {
    let (ptr, len) = (value.as_ptr(), value.len());
    match node {
        Node::Fd(fd) => rx(rustix::fs::fsetxattr(fd, attr, value, XattrFlags::empty())).map(|()| 0),
        Node::At(dir, name) => {
            let at = value_at(nr::SET, dir, name, attr, ptr as u64, len);
            at.unwrap_or_else(|| {
                let p = proc_path(dir, name);
                rx(rustix::fs::lsetxattr(
                    p.as_c_str(),
                    attr,
                    value,
                    XattrFlags::empty(),
                ))
                .map(|()| 0)
                .map_err(no_proc)
            })
        }
    }
    .map(drop)
}

/// Removes `attr`.
pub fn remove(node: Node, attr: &CStr) -> nix::Result<()> {
    match node {
        Node::Fd(fd) => rx(rustix::fs::fremovexattr(fd, attr)).map(|()| 0),
        Node::At(dir, name) => {
            let at = try_at(nr::REMOVE, |nr| {
                // SAFETY: name and attr are NUL-terminated.
                unsafe {
                    libc::syscall(
                        nr,
                        dir.as_raw_fd(),
                        name.as_ptr(),
                        libc::AT_SYMLINK_NOFOLLOW,
                        attr.as_ptr(),
                    )
                }
            });
            at.unwrap_or_else(|| {
                rx(rustix::fs::lremovexattr(
                    proc_path(dir, name).as_c_str(),
                    attr,
                ))
                .map(|()| 0)
                .map_err(no_proc)
            })
        }
    }
    .map(drop)
}

/// Calls `raw` with `buf` grown until the answer fits.
fn sized(
    buf: &mut Vec<u8>,
    mut raw: impl FnMut(&mut [u8]) -> nix::Result<usize>,
) -> nix::Result<()> {
    if buf.len() < 256 {
        buf.resize(256, 0);
    }
    loop {
        match raw(buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(());
            }
            Err(Errno::ERANGE) => {
                let need = raw(&mut [])?;
                buf.resize(need.max(buf.len() * 2), 0);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The names of `node`'s xattrs, NUL-separated, into `buf` (empty when none, or when the
/// filesystem has no xattrs at all). One call when they fit.
pub fn list_into(node: Node, buf: &mut Vec<u8>) -> nix::Result<()> {
    match sized(buf, |b| raw_list(node, b)) {
        Err(Errno::ENOTSUP) => {
            buf.clear();
            Ok(())
        }
        r => r,
    }
}

/// The names in a [`list_into`] buffer.
pub fn names(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    buf.split(|c| *c == 0).filter(|n| !n.is_empty())
}

/// Every xattr of `node`; `names` is its listing (see [`list_into`]).
pub fn read_listed(node: Node, listing: &[u8]) -> nix::Result<Xattrs> {
    let mut out = Vec::new();
    for n in names(listing) {
        let name = CString::new(n).expect("xattr names have no NUL");
        let mut v = Vec::new();
        match sized(&mut v, |b| raw_get(node, &name, b)) {
            Ok(()) => out.push((name, v)),
            // Removed between the listing and the read.
            Err(Errno::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Every xattr of `node`.
pub fn read(node: Node) -> nix::Result<Xattrs> {
    let mut listing = Vec::new();
    list_into(node, &mut listing)?;
    read_listed(node, &listing)
}

/// True when `node` has any xattr.
pub fn any(node: Node) -> nix::Result<bool> {
    let mut listing = Vec::new();
    list_into(node, &mut listing)?;
    Ok(!listing.is_empty())
}

/// Makes `node`'s xattrs `want`, except those `late` selects (set them later with
/// [`set_late`]). With `exact`, also removes what the node has and `want` lacks
/// (a default ACL's copy, a policy label).
pub fn apply(node: Node, want: &Xattrs, exact: bool) -> nix::Result<()> {
    for (n, v) in want {
        if n.as_bytes() != CAPABILITY {
            set(node, n, v)?;
        }
    }
    if exact {
        let mut listing = Vec::new();
        list_into(node, &mut listing)?;
        for n in names(&listing) {
            if !want.iter().any(|(w, _)| w.as_bytes() == n) {
                let n = CString::new(n).expect("xattr names have no NUL");
                match remove(node, &n) {
                    Ok(()) | Err(Errno::ENODATA) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// Sets the xattrs that `chown` clears (file capabilities): call after the owner is set.
pub fn set_late(node: Node, want: &Xattrs) -> nix::Result<()> {
    for (n, v) in want {
        if n.as_bytes() == CAPABILITY {
            set(node, n, v)?;
        }
    }
    Ok(())
}

/// The fallback forms, for tests on kernels that have the `*xattrat` calls.
#[cfg(test)]
fn fallback_read(dir: BorrowedFd, name: &CStr) -> nix::Result<Xattrs> {
    use std::os::unix::ffi::OsStrExt;
    let p = proc_path(dir, name);
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(p.to_bytes()));
    let mut out = Vec::new();
    for n in xattr::list(path).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))? {
        if let Some(v) =
            xattr::get(path, &n).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?
        {
            out.push((CString::new(n.as_bytes()).unwrap(), v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn symlink_xattrs_by_dir_and_name_match_the_proc_fallback() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/nowhere", d.path().join("l")).unwrap();
        let dir = std::fs::File::open(d.path()).unwrap();
        let name = CString::new("l").unwrap();
        let node = Node::At(dir.as_fd(), &name);
        let big = vec![7u8; 3000];
        set(node, c"trusted.orc-a", b"one").unwrap();
        set(node, c"trusted.orc-big", &big).unwrap();
        let mut got = read(node).unwrap();
        got.sort();
        let mut via_proc = fallback_read(dir.as_fd(), &name).unwrap();
        via_proc.sort();
        assert_eq!(got, via_proc);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].1, big);
        remove(node, c"trusted.orc-big").unwrap();
        assert_eq!(read(node).unwrap().len(), 1);
        // The link's target is never followed.
        assert!(!d.path().join("nowhere").exists());
        apply(node, &Vec::new(), true).unwrap();
        assert!(!any(node).unwrap());
    }

    #[test]
    fn the_proc_fallback_reads_and_writes_like_the_xattrat_calls() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/nowhere", d.path().join("l")).unwrap();
        let dir = std::fs::File::open(d.path()).unwrap();
        let name = CString::new("l").unwrap();
        let node = Node::At(dir.as_fd(), &name);
        set(node, c"trusted.orc-x", b"by xattrat").unwrap();
        // As on a kernel without the calls (other tests may take the fallback meanwhile:
        // it gives the same answers).
        let was = XATTRAT.swap(2, Ordering::Relaxed);
        let mut got = read(node).unwrap();
        set(node, c"trusted.orc-y", b"by proc").unwrap();
        got.extend(read(node).unwrap());
        remove(node, c"trusted.orc-x").unwrap();
        let after = read(node).unwrap();
        XATTRAT.store(was, Ordering::Relaxed);
        assert_eq!(
            got[0],
            (c"trusted.orc-x".to_owned(), b"by xattrat".to_vec())
        );
        assert_eq!(after, [(c"trusted.orc-y".to_owned(), b"by proc".to_vec())]);
        assert_eq!(read(node).unwrap(), after);
    }

    #[test]
    fn capabilities_are_held_back_for_after_chown() {
        let want: Xattrs = vec![
            (CString::new(CAPABILITY).unwrap(), vec![1]),
            (c"user.x".to_owned(), vec![2]),
        ];
        let d = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(d.path().join("f")).unwrap();
        apply(Node::Fd(f.as_fd()), &want, true).unwrap();
        let got = read(Node::Fd(f.as_fd())).unwrap();
        assert_eq!(got, [(c"user.x".to_owned(), vec![2])]);
    }
}
