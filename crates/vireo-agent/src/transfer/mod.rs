//! Image transfer on a host: tickets the engine adds for one volume each, and the data path
//! clients use with them (`/images/{ticket}`, the ovirt-imageio protocol, in [`http`]).
//!
//! A `raw` ticket serves guest data: a qcow2 volume is exported by a `qemu-nbd` of its own
//! (killed when the ticket goes) and read and written through [`nbd`]; a raw volume's file
//! already is guest data and is read and written directly. A `cow` ticket serves
//! the volume file's bytes as they are (oVirt does the same), with plain file I/O.

pub mod control;
pub mod http;
pub mod nbd;
mod qemu_nbd;

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use vireo_agent_proto::{AgentError, AgentResult, ErrorCode, TicketSpec, TicketStatus};

pub use qemu_nbd::QemuNbd;

/// Connections a ticket's qemu-nbd takes at once (what OPTIONS tells clients).
pub const MAX_CONNECTIONS: usize = 8;
/// Most tickets a host holds at once (each may be a qemu-nbd process).
const MAX_TICKETS: usize = 64;
/// How long removing a ticket waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);
/// oVirt's `QCOW_OVERHEAD_FACTOR` and header allowance for cow uploads on file storage.
const QCOW_OVERHEAD_FACTOR: f64 = 1.1;
const QCOW_HEADER_OVERHEAD: u64 = 5 << 20;

fn err(code: ErrorCode, msg: impl Into<String>) -> AgentError {
    AgentError::new(code, msg)
}

/// Where a ticket's bytes come from.
pub enum Backend {
    Nbd(Box<QemuNbd>),
    File(FileBackend),
}

pub struct FileBackend {
    file: Arc<std::fs::File>,
    writable: bool,
    /// A raw volume: its bytes are guest data, written by many clients at once, zeroed by
    /// punching holes.
    pub raw: bool,
}

impl FileBackend {
    pub async fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let f = self.file.clone();
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            let mut done = 0;
            while done < len {
                let n = f.read_at(&mut buf[done..], offset + done as u64)?;
                if n == 0 {
                    // Past the end of the file: zeroes, as a sparse tail reads.
                    break;
                }
                done += n;
            }
            Ok(buf)
        })
        .await
        .map_err(io::Error::other)?
    }

    pub async fn write(&self, offset: u64, data: bytes::Bytes) -> io::Result<()> {
        let f = self.file.clone();
        tokio::task::spawn_blocking(move || f.write_all_at(&data, offset))
            .await
            .map_err(io::Error::other)?
    }

    /// Writes `bufs` one after the other from `offset` with `pwritev`: the body's own
    /// buffers, not copied into one first.
    pub async fn write_vectored(&self, offset: u64, bufs: Vec<bytes::Bytes>) -> io::Result<()> {
        let f = self.file.clone();
        tokio::task::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            // At most IOV_MAX (1024) pieces per call.
            let mut slices: Vec<&[u8]> = bufs
                .iter()
                .map(|b| &b[..])
                .filter(|b| !b.is_empty())
                .collect();
            let mut at = 0usize;
            let mut off = offset;
            while at < slices.len() {
                let iov: Vec<libc::iovec> = slices[at..]
                    .iter()
                    .take(1024)
                    .map(|b| libc::iovec {
                        iov_base: b.as_ptr() as *mut libc::c_void,
                        iov_len: b.len(),
                    })
                    .collect();
                // SAFETY: the iovecs point into `bufs`, alive for the call; our own open file.
                let r = unsafe {
                    libc::pwritev(
                        f.as_raw_fd(),
                        iov.as_ptr(),
                        iov.len() as libc::c_int,
                        off as libc::off_t,
                    )
                };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
                if r == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "pwritev wrote nothing",
                    ));
                }
                off += r as u64;
                // Skips what was written, resuming inside a partly written slice.
                let mut n = r as usize;
                while n > 0 {
                    let first = slices[at].len();
                    if n >= first {
                        n -= first;
                        at += 1;
                    } else {
                        slices[at] = &slices[at][n..];
                        n = 0;
                    }
                }
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }

    pub async fn zero(&self, offset: u64, len: u64) -> io::Result<()> {
        let f = self.file.clone();
        let punch = self.raw;
        tokio::task::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            if punch && len > 0 {
                // SAFETY: fallocate on our own open file.
                let r = unsafe {
                    libc::fallocate(
                        f.as_raw_fd(),
                        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                        offset as libc::off_t,
                        len as libc::off_t,
                    )
                };
                if r == 0 {
                    return Ok(());
                }
            }
            let zeros = vec![0u8; (len as usize).min(1 << 20)];
            let mut done = 0u64;
            while done < len {
                let n = (len - done).min(zeros.len() as u64) as usize;
                f.write_all_at(&zeros[..n], offset + done)?;
                done += n as u64;
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Data and holes of `[0, size)` (`SEEK_DATA`/`SEEK_HOLE`): (start, length, hole).
    pub async fn extents(&self, size: u64) -> io::Result<Vec<(u64, u64, bool)>> {
        let f = self.file.clone();
        tokio::task::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            let fd = f.as_raw_fd();
            let seek = |off: u64, whence: libc::c_int| -> Option<u64> {
                // SAFETY: lseek on our own open file.
                let r = unsafe { libc::lseek(fd, off as libc::off_t, whence) };
                (r >= 0).then_some(r as u64)
            };
            let mut out = Vec::new();
            let mut off = 0u64;
            while off < size {
                let data = seek(off, libc::SEEK_DATA).unwrap_or(size).min(size);
                if data > off {
                    out.push((off, data - off, true));
                }
                if data >= size {
                    break;
                }
                let hole = seek(data, libc::SEEK_HOLE).unwrap_or(size).min(size);
                out.push((data, hole - data, false));
                off = hole;
            }
            Ok(out)
        })
        .await
        .map_err(io::Error::other)?
    }

    pub async fn flush(&self) -> io::Result<()> {
        let f = self.file.clone();
        tokio::task::spawn_blocking(move || f.sync_data())
            .await
            .map_err(io::Error::other)?
    }
}

pub struct Ticket {
    pub spec: TicketSpec,
    pub size: u64,
    pub backend: Backend,
    transferred: AtomicU64,
    in_flight: AtomicUsize,
    last_activity: Mutex<Instant>,
    expires: Mutex<Instant>,
}

/// Marks a request in flight for as long as it lives.
pub struct Activity(Arc<Ticket>);

impl Drop for Activity {
    fn drop(&mut self) {
        *self
            .0
            .last_activity
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticket {
    pub fn can(&self, op: &str) -> bool {
        // A write ticket also reads (imageio's "write" implies "read").
        self.spec
            .ops
            .iter()
            .any(|o| o == op || (op == "read" && o == "write"))
    }

    pub fn writable(&self) -> bool {
        self.can("write")
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= *self.expires.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn begin(self: &Arc<Self>) -> Activity {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Activity(self.clone())
    }

    pub fn add_transferred(&self, n: u64) {
        self.transferred.fetch_add(n, Ordering::Relaxed);
    }

    pub fn status(&self) -> TicketStatus {
        let now = Instant::now();
        let idle = now.saturating_duration_since(
            *self.last_activity.lock().unwrap_or_else(|e| e.into_inner()),
        );
        let expires = *self.expires.lock().unwrap_or_else(|e| e.into_inner());
        let active = self.in_flight.load(Ordering::SeqCst) > 0;
        TicketStatus {
            id: self.spec.id.clone(),
            size: self.size,
            transferred: self.transferred.load(Ordering::Relaxed),
            active,
            idle_time_s: if active { 0 } else { idle.as_secs() },
            expires_in_s: expires.saturating_duration_since(now).as_secs(),
            url_path: format!(
                "{}/{}",
                vireo_agent_proto::transfer::paths::IMAGES,
                self.spec.id
            ),
        }
    }

    async fn drain(&self) {
        let deadline = Instant::now() + DRAIN;
        while self.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A host's tickets.
#[derive(Default)]
pub struct Tickets {
    map: RwLock<HashMap<String, Arc<Ticket>>>,
    /// Ids being added (their qemu-nbd is starting).
    adding: Mutex<Vec<String>>,
}

/// Ticket ids are UUIDs in practice; anything that could break out of a URL path is refused.
fn check_id(id: &str) -> AgentResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(err(
            ErrorCode::InvalidRequest,
            format!("bad ticket id {id:?}"),
        ))
    }
}

impl Tickets {
    pub fn new() -> Arc<Tickets> {
        Arc::new(Tickets::default())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Ticket>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Opens the data path for `spec` on the volume at `path` (format `volume_format` as
    /// the volume's metadata says: `raw` or `cow`).
    pub async fn add(
        &self,
        spec: TicketSpec,
        path: &Path,
        volume_format: &str,
    ) -> AgentResult<TicketStatus> {
        check_id(&spec.id)?;
        if spec.ops.is_empty() || spec.ops.iter().any(|o| o != "read" && o != "write") {
            return Err(err(
                ErrorCode::InvalidRequest,
                "a ticket's ops are \"read\" and/or \"write\"",
            ));
        }
        if spec.timeout_s == 0 {
            return Err(err(ErrorCode::InvalidRequest, "a ticket needs a timeout"));
        }
        {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            let mut adding = self.adding.lock().unwrap_or_else(|e| e.into_inner());
            if map.contains_key(&spec.id) || adding.contains(&spec.id) {
                return Err(err(
                    ErrorCode::WrongState,
                    format!("ticket {} exists", spec.id),
                ));
            }
            if map.len() + adding.len() >= MAX_TICKETS {
                return Err(err(
                    ErrorCode::ResourceExhausted,
                    format!("this host holds {MAX_TICKETS} tickets already"),
                ));
            }
            adding.push(spec.id.clone());
        }
        let opened = open_backend(&spec, path, volume_format).await;
        self.adding
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|i| *i != spec.id);
        let (backend, size) = opened?;
        let now = Instant::now();
        let ticket = Arc::new(Ticket {
            size,
            backend,
            transferred: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_activity: Mutex::new(now),
            expires: Mutex::new(now + Duration::from_secs(spec.timeout_s)),
            spec,
        });
        let status = ticket.status();
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ticket.spec.id.clone(), ticket);
        Ok(status)
    }

    pub fn status(&self, id: &str) -> AgentResult<TicketStatus> {
        self.get(id)
            .map(|t| t.status())
            .ok_or_else(|| no_ticket(id))
    }

    pub fn extend(&self, id: &str, timeout_s: u64) -> AgentResult<TicketStatus> {
        let t = self.get(id).ok_or_else(|| no_ticket(id))?;
        *t.expires.lock().unwrap_or_else(|e| e.into_inner()) =
            Instant::now() + Duration::from_secs(timeout_s);
        Ok(t.status())
    }

    /// Closes the data path: waits for requests in flight, flushes, stops qemu-nbd. The
    /// volume is closed when this returns.
    pub async fn remove(&self, id: &str) -> AgentResult<TicketStatus> {
        let t = self
            .map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
            .ok_or_else(|| no_ticket(id))?;
        t.drain().await;
        let status = t.status();
        let flushed = match &t.backend {
            Backend::Nbd(n) => {
                let r = if t.writable() {
                    n.flush().await
                } else {
                    Ok(())
                };
                n.stop().await;
                r
            }
            Backend::File(f) if f.writable => f.flush().await,
            Backend::File(_) => Ok(()),
        };
        flushed.map_err(|e| {
            err(
                ErrorCode::Failed,
                format!("ticket {id}: flushing the volume failed: {e}"),
            )
        })?;
        Ok(status)
    }

    /// Stops every ticket's qemu-nbd (agent shutdown).
    pub async fn clear(&self) {
        let all: Vec<String> = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for id in all {
            let _ = self.remove(&id).await;
        }
    }
}

fn no_ticket(id: &str) -> AgentError {
    err(ErrorCode::NoSuchVolume, format!("no ticket {id}"))
}

async fn open_backend(
    spec: &TicketSpec,
    path: &Path,
    volume_format: &str,
) -> AgentResult<(Backend, u64)> {
    let meta = std::fs::metadata(path).map_err(|e| {
        err(
            ErrorCode::Unsupported,
            format!(
                "the volume {} has no data on this host ({e}); a simulated host cannot transfer images",
                path.display()
            ),
        )
    })?;
    if !meta.is_file() {
        return Err(err(
            ErrorCode::Unsupported,
            format!("{} is not a file volume", path.display()),
        ));
    }
    let writable = spec.ops.iter().any(|o| o == "write");
    let qemu_format = match volume_format {
        "cow" | "qcow2" => "qcow2",
        "raw" => "raw",
        f => {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!("unknown volume format {f:?}"),
            ))
        }
    };
    match spec.format.as_str() {
        "raw" if qemu_format == "raw" => {
            // A raw volume's bytes are its guest data: plain file I/O, no qemu-nbd hop.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(writable)
                .open(path)
                .map_err(|e| err(ErrorCode::Failed, format!("{}: {e}", path.display())))?;
            Ok((
                Backend::File(FileBackend {
                    file: Arc::new(file),
                    writable,
                    raw: true,
                }),
                meta.len(),
            ))
        }
        "raw" => {
            let nbd = QemuNbd::start(path, qemu_format, !writable, MAX_CONNECTIONS)
                .await
                .map_err(|e| err(ErrorCode::Failed, format!("qemu-nbd: {e}")))?;
            let size = nbd.size;
            Ok((Backend::Nbd(Box::new(nbd)), size))
        }
        "cow" => {
            if qemu_format != "qcow2" {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    "a cow transfer needs a qcow2 volume; use format raw for raw volumes",
                ));
            }
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(writable)
                .open(path)
                .map_err(|e| err(ErrorCode::Failed, format!("{}: {e}", path.display())))?;
            let limit = if writable {
                let virtual_size = crate::qemu::storage::image_info(path)
                    .await?
                    .get("virtual-size")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(meta.len());
                ((virtual_size as f64 * QCOW_OVERHEAD_FACTOR).ceil() as u64) + QCOW_HEADER_OVERHEAD
            } else {
                meta.len()
            };
            Ok((
                Backend::File(FileBackend {
                    file: Arc::new(file),
                    writable,
                    raw: false,
                }),
                limit,
            ))
        }
        f => Err(err(
            ErrorCode::InvalidRequest,
            format!("unknown transfer format {f:?}: raw or cow"),
        )),
    }
}

/// A short path for a unix socket (the kernel allows 108 bytes).
fn socket_path() -> PathBuf {
    std::env::temp_dir().join(format!("vireo-nbd-{}.sock", uuid::Uuid::new_v4().simple()))
}
