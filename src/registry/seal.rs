//! The seal: how a reader knows, from one `fstat`, that the registry is
//! exactly as wtenv wrote it.
//!
//! `env`'s hot path reads only its own worktree's lines, found by binary
//! search ([`super::find::find`]), so it cannot see damage elsewhere in the
//! file (a hand edit that records one port twice, say). It relies on the
//! seal instead: every write sets the temp file's modification time, before
//! the fsync and the rename, to a value whose sub-second part is derived
//! from the file's inode number and length. Anything else that writes the
//! file (an editor, a script, an older wtenv) leaves the current time
//! there, which matches with odds of one in a million at worst; a copy gets
//! another inode. A file without the seal is read and checked whole, as
//! before. Only the sub-second part is used, in microseconds, so the seal
//! holds on filesystems with microsecond timestamps; on coarser ones files
//! are simply read whole.
//!
//! What the seal certifies: the layout `serialize` writes (one allocation
//! per line, sorted by repository then worktree), and the checks every
//! writer makes (no port twice, none below 1024).

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The sub-second part of a sealed file's mtime, in nanoseconds: a whole
/// number of microseconds in 1..=999_999 (never 0, what coarse clocks give).
fn nanos(ino: u64, len: u64) -> u32 {
    // splitmix64's finalizer: every input bit moves every output bit.
    let mut x = ino ^ len.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let micros = (x % 999_999) as u32 + 1;
    micros * 1000
}

/// Seals `file`, fully written, before it is synced and renamed into place.
pub fn stamp(file: &File) -> io::Result<()> {
    let meta = file.metadata()?;
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    file.set_modified(UNIX_EPOCH + Duration::new(secs, nanos(meta.ino(), meta.len())))
}

/// Whether the file `meta` describes carries the seal.
pub fn is_sealed(meta: &Metadata) -> bool {
    u32::try_from(meta.mtime_nsec()).is_ok_and(|ns| ns == nanos(meta.ino(), meta.len()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_stamped_file_is_sealed_until_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"{}\n").unwrap();
        assert!(!is_sealed(&file.metadata().unwrap()));
        stamp(&file).unwrap();
        assert!(is_sealed(&std::fs::metadata(&path).unwrap()));
        // Rewritten in place, same length: the time moves, the seal breaks.
        std::fs::write(&path, b"[]\n").unwrap();
        assert!(!is_sealed(&std::fs::metadata(&path).unwrap()));
    }

    #[test]
    fn the_seal_is_whole_microseconds_never_zero() {
        for (ino, len) in [(0, 0), (1, 0), (0, 1), (u64::MAX, u64::MAX), (12345, 678)] {
            let ns = nanos(ino, len);
            assert!(
                (1000..1_000_000_000).contains(&ns) && ns.is_multiple_of(1000),
                "{ns}"
            );
        }
        assert_ne!(nanos(7, 100), nanos(7, 101));
        assert_ne!(nanos(7, 100), nanos(8, 100));
    }
}
