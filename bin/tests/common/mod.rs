//! What the tests that start the real binaries share: a server process that ends with its test, and a
//! free loopback port for it.

use std::{net::TcpListener, process::Child};

/// A running `imagegate-server`, killed when dropped, with the directory its data lives in.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub _dir: tempfile::TempDir,
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
