//! The data path, as the ovirt-imageio client speaks it: `OPTIONS`, ranged `GET`, `PUT` with
//! `Content-Range`, `PATCH` zero/flush, and `GET …/extents`. The ticket id in the path is the
//! only credential; errors are plain text with imageio's statuses (403 for an unknown or
//! expired ticket or an operation it does not allow, 416 outside the image, 400 otherwise).

// Handlers return their error answer directly.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use bytes::BytesMut;
use futures_util::StreamExt;
use serde::Deserialize;

use super::nbd::{STATE_HOLE, STATE_ZERO};
use super::{Backend, Ticket, Tickets, MAX_CONNECTIONS};

/// Bytes per backend request: reads and writes go in pieces of this size.
const CHUNK: usize = 4 << 20;
/// PATCH bodies are tiny JSON documents.
const PATCH_LIMIT: usize = 64 << 10;

type St = State<Arc<Tickets>>;

pub fn router(tickets: Arc<Tickets>) -> Router {
    Router::new()
        .route("/images/{ticket}", any(image))
        .route("/images/{ticket}/extents", get(extents))
        .with_state(tickets)
}

fn fail(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    let mut r = (status, format!("{msg}\n")).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    r
}

fn io_fail(e: std::io::Error) -> Response {
    fail(StatusCode::INTERNAL_SERVER_ERROR, format!("I/O error: {e}"))
}

/// The ticket, if it exists, has not expired and allows `op`.
fn ticket(tickets: &Tickets, id: &str, op: &str) -> Result<Arc<Ticket>, Response> {
    let t = tickets.get(id).ok_or_else(|| {
        fail(
            StatusCode::FORBIDDEN,
            format!("You are not allowed to access this resource: No such ticket {id}"),
        )
    })?;
    if t.expired() {
        return Err(fail(
            StatusCode::FORBIDDEN,
            format!("You are not allowed to access this resource: Ticket {id} expired"),
        ));
    }
    if !t.can(op) {
        return Err(fail(
            StatusCode::FORBIDDEN,
            format!("You are not allowed to access this resource: Ticket {id} forbids {op}"),
        ));
    }
    Ok(t)
}

async fn image(
    State(tickets): St,
    Path(id): Path<String>,
    method: Method,
    Query(q): Query<Params>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match method {
        Method::OPTIONS => options(&tickets, &id),
        Method::GET => match ticket(&tickets, &id, "read") {
            Ok(t) => read(t, &headers).await,
            Err(r) => r,
        },
        Method::PUT => match ticket(&tickets, &id, "write") {
            Ok(t) => write(t, &headers, &q, body).await,
            Err(r) => r,
        },
        Method::PATCH => match ticket(&tickets, &id, "write") {
            Ok(t) => patch(t, body).await,
            Err(r) => r,
        },
        _ => {
            let mut r = fail(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed on /images"),
            );
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("OPTIONS,GET,PUT,PATCH"),
            );
            r
        }
    }
}

#[derive(Deserialize, Default)]
struct Params {
    flush: Option<String>,
    context: Option<String>,
}

fn options(tickets: &Tickets, id: &str) -> Response {
    let (features, allow, writers): (&[&str], &str, usize) = if id == "*" {
        (
            &["extents", "zero", "flush"],
            "OPTIONS,GET,PUT,PATCH",
            MAX_CONNECTIONS,
        )
    } else {
        let t = match ticket(tickets, id, "read") {
            Ok(t) => t,
            Err(r) => return r,
        };
        let writers = match &t.backend {
            Backend::Nbd(_) => MAX_CONNECTIONS,
            Backend::File(f) if f.raw => MAX_CONNECTIONS,
            Backend::File(_) => 1,
        };
        if t.writable() {
            (
                &["extents", "zero", "flush"],
                "OPTIONS,GET,PUT,PATCH",
                writers,
            )
        } else {
            (&["extents"], "OPTIONS,GET", 0)
        }
    };
    let doc = serde_json::json!({
        "features": features,
        "max_readers": MAX_CONNECTIONS,
        "max_writers": writers,
    });
    let mut r = (StatusCode::OK, doc.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(allow) {
        h.insert(header::ALLOW, v);
    }
    r
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` against `size`: the inclusive range, or `None` when
/// it cannot be satisfied. Multiple ranges are not supported (imageio neither).
pub fn parse_range(v: &str, size: u64) -> Result<Option<(u64, u64)>, String> {
    let spec = v
        .trim()
        .strip_prefix("bytes=")
        .ok_or_else(|| format!("unsupported range unit in {v:?}"))?;
    if spec.contains(',') {
        return Err("multiple ranges are not supported".into());
    }
    let (a, b) = spec
        .split_once('-')
        .ok_or_else(|| format!("bad range {v:?}"))?;
    let num = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("bad range {v:?}"))
    };
    let (start, end) = match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, true) => return Err(format!("bad range {v:?}")),
        (true, false) => {
            let n = num(b)?;
            if n == 0 || size == 0 {
                return Ok(None);
            }
            (size.saturating_sub(n), size - 1)
        }
        (false, true) => (num(a)?, size.saturating_sub(1)),
        (false, false) => (num(a)?, num(b)?),
    };
    if start >= size {
        return Ok(None);
    }
    if start > end {
        return Err(format!("bad range {v:?}"));
    }
    Ok(Some((start, end.min(size - 1))))
}

/// `bytes a-b/*` or `bytes a-b/total`: (start, end inclusive).
pub fn parse_content_range(v: &str) -> Result<(u64, u64), String> {
    let bad = || format!("bad Content-Range {v:?}");
    let spec = v.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, _total) = spec.split_once('/').ok_or_else(bad)?;
    let (a, b) = range.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if a > b {
        return Err(bad());
    }
    Ok((a, b))
}

fn unsatisfiable(size: u64, what: impl std::fmt::Display) -> Response {
    let mut r = fail(StatusCode::RANGE_NOT_SATISFIABLE, what);
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}

async fn read_chunk(t: &Ticket, offset: u64, len: usize) -> std::io::Result<Bytes> {
    match &t.backend {
        Backend::Nbd(n) => {
            let mut c = n.conn().await?;
            let mut buf = BytesMut::zeroed(len);
            c.read(offset, &mut buf).await?;
            n.put(c);
            Ok(buf.freeze())
        }
        Backend::File(f) => Ok(Bytes::from(f.read(offset, len).await?)),
    }
}

async fn read(t: Arc<Ticket>, headers: &HeaderMap) -> Response {
    let size = t.size;
    let range = match headers.get(header::RANGE).map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => match parse_range(v, size) {
            Ok(Some(r)) => Some(r),
            Ok(None) => {
                return unsatisfiable(size, format!("Range {v} outside the image (size {size})"))
            }
            Err(e) => return fail(StatusCode::BAD_REQUEST, e),
        },
        Some(Err(_)) => return fail(StatusCode::BAD_REQUEST, "unreadable Range header"),
    };
    let (start, end, status) = match range {
        Some((a, b)) => (a, b, StatusCode::PARTIAL_CONTENT),
        None if size == 0 => (0, 0, StatusCode::OK),
        None => (0, size - 1, StatusCode::OK),
    };
    let total = if size == 0 { 0 } else { end - start + 1 };
    let activity = t.begin();
    // The first piece is read before answering, so a failing backend gets an error status.
    let first_len = (total as usize).min(CHUNK);
    let first = if first_len > 0 {
        match read_chunk(&t, start, first_len).await {
            Ok(b) => b,
            Err(e) => return io_fail(e),
        }
    } else {
        Bytes::new()
    };
    t.add_transferred(first.len() as u64);
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let rest_from = start + first_len as u64;
    let end_excl = start + total;
    let task_ticket = t.clone();
    tokio::spawn(async move {
        let _activity = activity;
        let t = task_ticket;
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        let mut off = rest_from;
        while off < end_excl {
            let n = ((end_excl - off) as usize).min(CHUNK);
            let piece = read_chunk(&t, off, n).await;
            let failed = piece.is_err();
            if let Ok(b) = &piece {
                t.add_transferred(b.len() as u64);
            }
            if tx.send(piece).await.is_err() || failed {
                return;
            }
            off += n as u64;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    r
}

fn flag(v: Option<&str>, default: bool) -> Result<bool, Response> {
    match v {
        None => Ok(default),
        Some("y" | "yes" | "true" | "1") => Ok(true),
        Some("n" | "no" | "false" | "0") => Ok(false),
        Some(o) => Err(fail(
            StatusCode::BAD_REQUEST,
            format!("bad flush value {o:?}"),
        )),
    }
}

async fn flush(t: &Ticket) -> std::io::Result<()> {
    match &t.backend {
        Backend::Nbd(n) => n.flush().await,
        Backend::File(f) => f.flush().await,
    }
}

async fn write(t: Arc<Ticket>, headers: &HeaderMap, q: &Params, body: Body) -> Response {
    let do_flush = match flag(q.flush.as_deref(), true) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let length: Option<u64> = match headers
        .get(header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|s| s.parse().ok()))
    {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => return fail(StatusCode::BAD_REQUEST, "bad Content-Length"),
    };
    let (start, len) = match headers.get(header::CONTENT_RANGE).map(|v| v.to_str()) {
        Some(Ok(v)) => match parse_content_range(v) {
            Ok((a, b)) => {
                let n = b - a + 1;
                if length.is_some_and(|l| l != n) {
                    return fail(
                        StatusCode::BAD_REQUEST,
                        format!("Content-Range {v} does not match Content-Length"),
                    );
                }
                (a, n)
            }
            Err(e) => return fail(StatusCode::BAD_REQUEST, e),
        },
        Some(Err(_)) => return fail(StatusCode::BAD_REQUEST, "unreadable Content-Range header"),
        None => match length {
            Some(n) => (0, n),
            None => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "Content-Length or Content-Range required",
                )
            }
        },
    };
    if start.checked_add(len).is_none_or(|e| e > t.size) {
        return unsatisfiable(
            t.size,
            format!(
                "write of {len} bytes at {start} outside the image (size {})",
                t.size
            ),
        );
    }
    let _activity = t.begin();
    // The body's buffers go to the volume as they arrive, without being copied together.
    let mut received = 0u64;
    let mut body_error: Option<String> = None;
    let written = {
        let mut data = body.into_data_stream().map(|piece| match piece {
            Ok(b) => {
                received += b.len() as u64;
                Ok(b)
            }
            Err(e) => {
                body_error = Some(e.to_string());
                Err(std::io::Error::other("reading the body failed"))
            }
        });
        let r = match &t.backend {
            Backend::Nbd(n) => write_nbd(&t, n, start, len, &mut data).await,
            Backend::File(f) => write_file(&t, f, start, len, &mut data).await,
        };
        // What is left of the body (one longer than its range) is read to be told apart.
        if r.is_ok() {
            while let Some(Ok(_)) = data.next().await {}
        }
        r
    };
    if let Some(e) = body_error {
        return fail(StatusCode::BAD_REQUEST, format!("reading the body: {e}"));
    }
    if received > len {
        return fail(
            StatusCode::BAD_REQUEST,
            format!("the body is longer than {len} bytes"),
        );
    }
    if received < len {
        return fail(
            StatusCode::BAD_REQUEST,
            format!("expected {len} bytes, got {received}"),
        );
    }
    if let Err(e) = written {
        return io_fail(e);
    }
    if do_flush {
        if let Err(e) = flush(&t).await {
            return io_fail(e);
        }
    }
    StatusCode::OK.into_response()
}

/// Bytes per NBD write of a streamed PUT: several are in flight on a connection.
const NBD_PIECE: u32 = 2 << 20;
/// Most body buffers in one `pwritev`.
const MAX_IOV: usize = 1024;

type Data<'a> = dyn futures_util::Stream<Item = std::io::Result<Bytes>> + Unpin + Send + 'a;

/// Streams the body into the ticket's qemu-nbd: one connection from the pool, writes of
/// [`NBD_PIECE`] pipelined on it.
async fn write_nbd(
    t: &Ticket,
    n: &super::QemuNbd,
    start: u64,
    len: u64,
    data: &mut Data<'_>,
) -> std::io::Result<()> {
    let mut c = n.conn().await?;
    c.write_stream(start, len, NBD_PIECE, data).await?;
    // Only a connection whose every request got its reply goes back to the pool.
    n.put(c);
    t.add_transferred(len);
    Ok(())
}

/// Writes the body into a raw volume: the buffers received are gathered up to [`CHUNK`]
/// bytes and written with one `pwritev` by a writer task while the next ones arrive.
async fn write_file(
    t: &Arc<Ticket>,
    f: &super::FileBackend,
    start: u64,
    len: u64,
    data: &mut Data<'_>,
) -> std::io::Result<()> {
    let (to_writer, mut batches) = tokio::sync::mpsc::channel::<(u64, Vec<Bytes>, u64)>(1);
    let wt = t.clone();
    let writer = async {
        while let Some((off, bufs, n)) = batches.recv().await {
            f.write_vectored(off, bufs).await?;
            wt.add_transferred(n);
        }
        Ok::<(), std::io::Error>(())
    };
    let receive = async move {
        let mut off = start;
        let end = start + len;
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batch_len = 0u64;
        while off + batch_len < end {
            let Some(piece) = data.next().await else {
                break;
            };
            let mut piece = piece?;
            // Never past the range: a longer body is refused by the caller.
            let room = end - off - batch_len;
            if piece.len() as u64 > room {
                piece.truncate(room as usize);
            }
            batch_len += piece.len() as u64;
            batch.push(piece);
            if batch_len >= CHUNK as u64 || batch.len() >= MAX_IOV {
                let full = std::mem::take(&mut batch);
                if to_writer.send((off, full, batch_len)).await.is_err() {
                    return Err(std::io::Error::other("the writer stopped"));
                }
                off += batch_len;
                batch_len = 0;
            }
        }
        if !batch.is_empty() && to_writer.send((off, batch, batch_len)).await.is_err() {
            return Err(std::io::Error::other("the writer stopped"));
        }
        Ok(())
    };
    tokio::try_join!(writer, receive).map(|_| ())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchOp {
    op: String,
    offset: Option<u64>,
    size: Option<u64>,
    #[serde(default)]
    flush: bool,
}

async fn patch(t: Arc<Ticket>, body: Body) -> Response {
    let bytes = match axum::body::to_bytes(body, PATCH_LIMIT).await {
        Ok(b) => b,
        Err(e) => return fail(StatusCode::BAD_REQUEST, format!("bad PATCH body: {e}")),
    };
    let op: PatchOp = match serde_json::from_slice(&bytes) {
        Ok(o) => o,
        Err(e) => return fail(StatusCode::BAD_REQUEST, format!("bad PATCH body: {e}")),
    };
    let _activity = t.begin();
    match op.op.as_str() {
        "zero" => {
            let (Some(offset), Some(size)) = (op.offset, op.size) else {
                return fail(StatusCode::BAD_REQUEST, "zero needs offset and size");
            };
            if offset.checked_add(size).is_none_or(|e| e > t.size) {
                return unsatisfiable(
                    t.size,
                    format!(
                        "zero of {size} bytes at {offset} outside the image (size {})",
                        t.size
                    ),
                );
            }
            let r = match &t.backend {
                Backend::Nbd(n) => {
                    async {
                        let mut c = n.conn().await?;
                        let mut off = offset;
                        while off < offset + size {
                            let step = (offset + size - off).min(1 << 30) as u32;
                            c.zero(off, step, true).await?;
                            off += step as u64;
                        }
                        n.put(c);
                        Ok(())
                    }
                    .await
                }
                Backend::File(f) => f.zero(offset, size).await,
            };
            if let Err(e) = r {
                return io_fail(e);
            }
            t.add_transferred(size);
            if op.flush {
                if let Err(e) = flush(&t).await {
                    return io_fail(e);
                }
            }
            StatusCode::OK.into_response()
        }
        "flush" => match flush(&t).await {
            Ok(()) => StatusCode::OK.into_response(),
            Err(e) => io_fail(e),
        },
        o => fail(
            StatusCode::BAD_REQUEST,
            format!("unsupported operation {o:?}"),
        ),
    }
}

async fn extents(State(tickets): St, Path(id): Path<String>, Query(q): Query<Params>) -> Response {
    let t = match ticket(&tickets, &id, "read") {
        Ok(t) => t,
        Err(r) => return r,
    };
    match q.context.as_deref().unwrap_or("zero") {
        "zero" => {}
        "dirty" => {
            return fail(
                StatusCode::NOT_FOUND,
                format!("Ticket {id} does not support dirty extents"),
            )
        }
        c => {
            return fail(
                StatusCode::BAD_REQUEST,
                format!("unknown extents context {c:?}"),
            )
        }
    }
    let _activity = t.begin();
    let list: Vec<serde_json::Value> = match &t.backend {
        Backend::Nbd(n) => match n.extents().await {
            Ok(e) => e
                .into_iter()
                .map(|(start, e)| {
                    serde_json::json!({
                        "start": start,
                        "length": e.length,
                        "zero": e.flags & STATE_ZERO != 0,
                        "hole": e.flags & STATE_HOLE != 0,
                    })
                })
                .collect(),
            Err(e) => return io_fail(e),
        },
        Backend::File(f) => match f.extents(t.size).await {
            Ok(e) => e
                .into_iter()
                .map(|(start, length, hole)| {
                    serde_json::json!({"start": start, "length": length, "zero": hole, "hole": hole})
                })
                .collect(),
            Err(e) => return io_fail(e),
        },
    };
    let mut r = (StatusCode::OK, serde_json::Value::from(list).to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some((0, 99))));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some((900, 999))));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some((900, 999))));
        assert_eq!(parse_range("bytes=990-2000", 1000), Ok(Some((990, 999))));
        assert_eq!(parse_range("bytes=1000-1001", 1000), Ok(None));
        assert_eq!(parse_range("bytes=1000-", 1000), Ok(None));
        assert!(parse_range("bytes=5-1", 1000).is_err());
        assert!(parse_range("items=0-1", 1000).is_err());
        assert!(parse_range("bytes=0-1,3-4", 1000).is_err());
        assert!(parse_range("bytes=x-1", 1000).is_err());
        assert_eq!(parse_content_range("bytes 0-511/*"), Ok((0, 511)));
        assert_eq!(parse_content_range("bytes 512-1023/2048"), Ok((512, 1023)));
        assert!(parse_content_range("bytes 5-1/*").is_err());
        assert!(parse_content_range("0-1/*").is_err());
    }
}
