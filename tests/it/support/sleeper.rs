//! A process for a test to point at, that a failed assertion does not leak.

/// A live `sleep 600`, killed and reaped on drop: a failed assertion
/// leaks nothing.
pub struct Sleeper(pub std::process::Child);

impl Sleeper {
    pub fn new() -> Sleeper {
        use std::process::Stdio;
        Sleeper(
            std::process::Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
