//! One `qemu-nbd` per raw ticket, on a unix socket of its own, with a pool of connections.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use super::nbd::{Client, Extent};

const START_TIMEOUT: Duration = Duration::from_secs(10);

pub type Conn = Client<UnixStream>;

/// How qemu-nbd opens the volume. As vdsm runs it for imageio: `--cache=none --aio=native`
/// (O_DIRECT: the data goes to the storage without a copy into the page cache, and qemu-nbd
/// spends less CPU) where the filesystem takes O_DIRECT, else the page cache
/// (`--cache=writeback`). Either way an NBD flush ends in fdatasync, so a flushed upload is
/// on the disk.
fn cache_args(path: &Path) -> [&'static str; 2] {
    use std::os::unix::fs::OpenOptionsExt;
    let direct = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .is_ok();
    if direct {
        ["--cache=none", "--aio=native"]
    } else {
        ["--cache=writeback", "--aio=threads"]
    }
}

pub struct QemuNbd {
    socket: PathBuf,
    child: Mutex<Option<Child>>,
    idle: std::sync::Mutex<Vec<Conn>>,
    pub size: u64,
    pub read_only: bool,
}

impl QemuNbd {
    pub async fn start(
        path: &Path,
        format: &str,
        read_only: bool,
        shared: usize,
    ) -> io::Result<QemuNbd> {
        let socket = super::socket_path();
        let mut cmd = Command::new("qemu-nbd");
        cmd.arg(format!("--format={format}"))
            .arg(format!("--socket={}", socket.display()))
            .arg("--persistent")
            .arg(format!("--shared={shared}"))
            .args(cache_args(path))
            .arg("--export-name=");
        if read_only {
            cmd.arg("--read-only");
        } else {
            // Zeroes written by clients become holes, as oVirt's NBD server is set up.
            cmd.arg("--discard=unmap").arg("--detect-zeroes=unmap");
        }
        cmd.arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: prctl in the child before exec only sets a process attribute.
        unsafe {
            cmd.pre_exec(|| {
                // qemu-nbd must not outlive an agent that dies without cleaning up.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let deadline = Instant::now() + START_TIMEOUT;
        let first = loop {
            if let Ok(s) = UnixStream::connect(&socket).await {
                break Client::handshake(s, "").await?;
            }
            if let Some(status) = child.try_wait()? {
                let mut text = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = e.read_to_string(&mut text).await;
                }
                let _ = std::fs::remove_file(&socket);
                return Err(io::Error::other(format!(
                    "exited ({status}): {}",
                    text.trim()
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill().await;
                let _ = std::fs::remove_file(&socket);
                return Err(io::Error::other("did not start within 10 s"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        Ok(QemuNbd {
            size: first.size,
            read_only: first.flags & super::nbd::TF_READ_ONLY != 0,
            socket,
            child: Mutex::new(Some(child)),
            idle: std::sync::Mutex::new(vec![first]),
        })
    }

    /// A connection from the pool, or a new one.
    pub async fn conn(&self) -> io::Result<Conn> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(c) => Ok(c),
            None => Client::handshake(UnixStream::connect(&self.socket).await?, "").await,
        }
    }

    /// Gives a healthy connection back (one that failed is just dropped).
    pub fn put(&self, c: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < super::MAX_CONNECTIONS {
            idle.push(c);
        }
    }

    pub async fn flush(&self) -> io::Result<()> {
        let mut c = self.conn().await?;
        c.flush().await?;
        self.put(c);
        Ok(())
    }

    /// Extents of the whole export, adjacent ones of the same kind merged.
    pub async fn extents(&self) -> io::Result<Vec<(u64, Extent)>> {
        let mut c = self.conn().await?;
        let mut out: Vec<(u64, Extent)> = Vec::new();
        let mut offset = 0u64;
        while offset < self.size {
            let len = (self.size - offset).min(1 << 30) as u32;
            for e in c.block_status(offset, len).await? {
                let length = e.length.min(self.size - offset);
                if length == 0 {
                    continue;
                }
                match out.last_mut() {
                    Some((_, last)) if last.flags == e.flags => last.length += length,
                    _ => out.push((
                        offset,
                        Extent {
                            length,
                            flags: e.flags,
                        },
                    )),
                }
                offset += length;
                if offset >= self.size {
                    break;
                }
            }
        }
        self.put(c);
        Ok(out)
    }

    /// Disconnects and stops the server; returns when the process is gone.
    pub async fn stop(&self) {
        let conns: Vec<Conn> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for c in conns {
            c.disconnect().await;
        }
        if let Some(mut child) = self.child.lock().await.take() {
            if let Some(pid) = child.id() {
                // SIGTERM: qemu-nbd closes the image cleanly.
                // SAFETY: signalling our own child by pid.
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for QemuNbd {
    fn drop(&mut self) {
        // The child is killed on drop; its socket file is ours to remove.
        let _ = std::fs::remove_file(&self.socket);
    }
}
