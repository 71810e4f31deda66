//! A child process that is killed when its guard is dropped, with its output in a log file that
//! is printed when the test fails. It is also killed when the thread that started it ends, so a
//! guard that is never dropped (the shared gateway in a static, a test binary killed by a
//! signal) leaves no process behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with stdout and stderr going to `log`. The process gets SIGKILL when
    /// the calling thread ends: start processes from a thread that outlives their guard (a
    /// test's own thread, or the shared gateway's).
    pub fn spawn(name: &str, command: Command, log: &Path) -> Self {
        let out = File::create(log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = die_with_parent_thread(command)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line starting with `prefix` and returns the rest of that line.
    /// Fails early if the process exits.
    pub async fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(rest) = self.log().lines().find_map(|l| l.strip_prefix(prefix)) {
                return rest.trim().to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before printing {prefix:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print {prefix:?} within {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the log has a line containing `text`. Fails early if the process exits.
    pub async fn wait_for_line_containing(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().lines().any(|l| l.contains(text)) {
            assert!(
                self.is_running(),
                "{} exited before logging {text:?}:\n{}",
                self.name,
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "{} did not log {text:?} within {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the `listening on ADDR` line a service prints once bound (the project's binaries
    /// do, for callers that gave them port 0) and returns the address.
    pub async fn listening_addr(&mut self) -> std::net::SocketAddr {
        let line = self
            .wait_for_line("listening on ", Duration::from_secs(20))
            .await;
        line.parse()
            .unwrap_or_else(|_| panic!("{}: bad address {line:?}", self.name))
    }

    /// Waits for the process to exit by itself; `None` if it is still running at `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Linux's parent-death signal: SIGKILL for the child when the thread that started it ends
/// (with the whole process, or alone). util-linux's `setpriv` arms it and then becomes the
/// program (`exec`), so the signal holds for the program itself, and the test harness needs no
/// `unsafe` code of its own to set it between fork and exec.
fn die_with_parent_thread(command: Command) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args(["--pdeathsig", "KILL", "--"])
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "---- last lines of {} ({}) ----",
                self.name,
                self.log.display()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
