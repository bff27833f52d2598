use std::os::unix::fs::PermissionsExt;

use super::*;

#[test]
fn replace_never_writes_through_a_planted_link_and_is_0600() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, "keep").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("f.tmp")).unwrap();
    replace(dir.path(), "f", b"new").unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"new");
    let mode = std::fs::metadata(dir.path().join("f"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        dir.path().join("f.tmp").symlink_metadata().is_ok(),
        "a link is left alone"
    );
}

/// Written in place: each write leaves exactly its bytes, shorter or
/// longer than the file was, and the same inode.
#[test]
fn write_own_leaves_exactly_the_bytes_written_in_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stamp");
    write_own(&path, b"app=5000,web=5001\n").unwrap();
    let ino = std::fs::metadata(&path).unwrap().ino();
    for bytes in [&b"app=5000\n"[..], b"\n", b"app=5000,web=5001,db=5002\n"] {
        write_own(&path, bytes).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), ino);
    }
}

/// Replaced: each write leaves exactly its bytes, 0600; what is there
/// and is not a regular file of ours with one name is refused, as
/// `write_own` refuses it, and left as it is.
#[test]
fn replace_own_leaves_exactly_the_bytes_written_and_refuses_what_write_own_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stamp");
    for bytes in [
        &b"app=5000,web=5001\n"[..],
        b"\n",
        b"app=5000,web=5001,db=5002\n",
    ] {
        replace_own(&path, bytes, |_| Ok(())).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, "keep").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let hard = dir.path().join("hard");
    std::fs::hard_link(&target, &hard).unwrap();
    for planted in [&link, &hard] {
        let err = replace_own(planted, b"x\n", |_| Ok(())).unwrap_err();
        let write_own_err = write_own(planted, b"x\n").unwrap_err();
        assert_eq!(err.to_string(), write_own_err.to_string());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
}

#[test]
fn stale_temps_of_dead_writers_are_removed_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("f.tmp.999999999.1");
    let live = dir.path().join(format!("f.tmp.{}.1", std::process::id()));
    let other = dir.path().join("g.tmp.999999999.1");
    for p in [&dead, &live, &other] {
        std::fs::write(p, "x").unwrap();
    }
    clean_stale_temps(dir.path(), "f");
    assert!(!dead.exists());
    assert!(live.exists());
    assert!(other.exists());
}

#[test]
fn locks_refuse_links_and_fifos() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("l.lock");
    std::os::unix::fs::symlink(dir.path().join("target"), &link).unwrap();
    assert!(matches!(
        open_lock(&link),
        Err(OpenError::Refused(Refusal::Symlink))
    ));
    assert!(
        !dir.path().join("target").exists(),
        "created through the link"
    );
    let fifo = dir.path().join("f.lock");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert!(matches!(
        open_lock(&fifo),
        Err(OpenError::Refused(Refusal::NotRegular("a FIFO")))
    ));
}

#[test]
fn reads_are_capped() {
    let zero = File::open("/dev/zero").unwrap();
    assert!(matches!(
        read_capped(&zero, 4096, 0),
        Err(OpenError::Refused(Refusal::TooLarge(4096)))
    ));
}

/// The command that removes what is there: `rm` fails on a directory.
#[test]
fn the_removal_of_what_is_at_a_path_fits_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("planted");
    let quoted = crate::shell::quote_in_message(&path);
    let removal = || {
        let r = removal(&path);
        (r.command, r.recursive)
    };
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
    nix::unistd::mkfifo(&path, mode).unwrap();
    assert_eq!(removal(), (format!("rm {quoted}"), false));
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    assert_eq!(removal(), (format!("rmdir {quoted}"), false));
    std::fs::write(path.join("left"), "").unwrap();
    assert_eq!(removal(), (format!("rm -r {quoted}"), true));
    // A link to a directory is the link's to remove, not the directory's.
    std::fs::remove_dir_all(&path).unwrap();
    std::os::unix::fs::symlink(dir.path(), &path).unwrap();
    assert_eq!(removal(), (format!("rm {quoted}"), false));
}
