//! What the tests that start the real binaries share: a server process that ends with its test, a free
//! loopback port for it, and the wait until it answers.

// Each test file is a crate of its own that uses part of this.
#![allow(dead_code)]

use std::{
    io::Read as _,
    net::TcpListener,
    process::{Child, Command},
    time::{Duration, Instant},
};

/// How long a started server has to answer its health path.
const START_WITHIN: Duration = Duration::from_secs(60);

/// A running `imagegate-server`, killed when dropped, with the directory its data lives in.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `cmd`, an `imagegate-server` listening on 127.0.0.1:`port`, and waits until its `/healthz`
    /// answers (see [`wait_until_up`]); `dir` is removed when the server is dropped.
    pub async fn spawn(cmd: &mut Command, port: u16, dir: tempfile::TempDir) -> Server {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
        let mut server = Server { child, base: format!("http://127.0.0.1:{port}"), _dir: dir };
        wait_until_up(&mut server.child, &format!("{}/healthz", server.base)).await;
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `GET url` every 100 ms until it answers 2xx. Panics, naming `url`, when that has not happened
/// within 60 s, and at once, with the exit status (and the standard error, when it is a pipe), when
/// `child` has exited.
pub async fn wait_until_up(child: &mut Child, url: &str) {
    // A request that hangs is given up on and retried, so that the deadline holds.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let deadline = Instant::now() + START_WITHIN;
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            panic!(
                "the server exited with {status} before {url} answered{}",
                if stderr.is_empty() { String::new() } else { format!(":\n{stderr}") }
            );
        }
        assert!(Instant::now() < deadline, "{url} did not answer 2xx within {START_WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
