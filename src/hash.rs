//! FNV-1a, the one hash wtenv derives names and marks with (from paths: a
//! unit's name, a worktree lock's file name, the mark of where a stamp
//! was written; from the kernel's words: this boot's tag of a process's
//! start time, macOS's start date as a token): stable across versions
//! and platforms, unlike std's hasher. Only to tell apart inputs that
//! differ, never to vouch for anything someone could choose to make
//! collide.

/// The 64-bit FNV-1a hash of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}
