//! A small NBD client (fixed newstyle handshake, `NBD_OPT_GO`, structured replies, the
//! `base:allocation` meta context) for the qemu-nbd that serves a ticket's volume. One
//! request at a time per connection, except [`Client::write_stream`], which keeps several
//! writes in flight and matches their replies by cookie; callers keep a pool for parallelism.

use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_NO_ZEROES: u16 = 2;

const OPT_GO: u32 = 7;
const OPT_STRUCTURED_REPLY: u32 = 8;
const OPT_SET_META_CONTEXT: u32 = 10;

const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const REP_META_CONTEXT: u32 = 4;
const REP_ERR_BIT: u32 = 1 << 31;

const INFO_EXPORT: u16 = 0;

pub const TF_READ_ONLY: u16 = 1 << 1;
const TF_SEND_FLUSH: u16 = 1 << 2;

const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const CMD_TRIM: u16 = 4;
const CMD_WRITE_ZEROES: u16 = 6;
const CMD_BLOCK_STATUS: u16 = 7;

const CMD_FLAG_NO_HOLE: u16 = 1 << 1;

const CHUNK_NONE: u16 = 0;
const CHUNK_OFFSET_DATA: u16 = 1;
const CHUNK_OFFSET_HOLE: u16 = 2;
const CHUNK_BLOCK_STATUS: u16 = 5;
const CHUNK_ERROR_BIT: u16 = 1 << 15;
const CHUNK_FLAG_DONE: u16 = 1;

pub const STATE_HOLE: u32 = 1;
pub const STATE_ZERO: u32 = 2;

/// Largest payload qemu-nbd accepts in one request.
pub const MAX_REQUEST: u32 = 32 << 20;
/// Socket buffering each way.
const BUFFER: usize = 256 << 10;
/// Option replies bigger than this are refused (they are tiny in practice).
const MAX_OPTION_REPLY: u32 = 1 << 16;

fn proto(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// One extent of `base:allocation`: `flags` has [`STATE_HOLE`] and [`STATE_ZERO`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub length: u64,
    pub flags: u32,
}

pub struct Client<S> {
    rd: BufReader<tokio::io::ReadHalf<S>>,
    wr: BufWriter<tokio::io::WriteHalf<S>>,
    pub size: u64,
    pub flags: u16,
    /// The id the server gave `base:allocation`, when it has it.
    meta_context: Option<u32>,
    cookie: u64,
}

impl<S: AsyncRead + AsyncWrite> Client<S> {
    /// Handshake on `stream` for export `name`.
    pub async fn handshake(stream: S, name: &str) -> io::Result<Client<S>> {
        let (r, w) = tokio::io::split(stream);
        let mut c = Client {
            rd: BufReader::with_capacity(BUFFER, r),
            wr: BufWriter::with_capacity(BUFFER, w),
            size: 0,
            flags: 0,
            meta_context: None,
            cookie: 0,
        };
        if c.rd.read_u64().await? != NBDMAGIC || c.rd.read_u64().await? != IHAVEOPT {
            return Err(proto("not a newstyle NBD server"));
        }
        let server_flags = c.rd.read_u16().await?;
        if server_flags & FLAG_FIXED_NEWSTYLE == 0 {
            return Err(proto("the NBD server does not speak fixed newstyle"));
        }
        let mut client_flags = FLAG_FIXED_NEWSTYLE as u32;
        if server_flags & FLAG_NO_ZEROES != 0 {
            client_flags |= FLAG_NO_ZEROES as u32;
        }
        c.wr.write_u32(client_flags).await?;

        // Structured replies carry block status; without them, extents are all data.
        c.send_option(OPT_STRUCTURED_REPLY, &[]).await?;
        let structured = c.option_replies(OPT_STRUCTURED_REPLY).await?.is_ok();
        if structured {
            let mut data = Vec::new();
            data.extend_from_slice(&(name.len() as u32).to_be_bytes());
            data.extend_from_slice(name.as_bytes());
            data.extend_from_slice(&1u32.to_be_bytes());
            let q = b"base:allocation";
            data.extend_from_slice(&(q.len() as u32).to_be_bytes());
            data.extend_from_slice(q);
            c.send_option(OPT_SET_META_CONTEXT, &data).await?;
            if let Ok(replies) = c.option_replies(OPT_SET_META_CONTEXT).await? {
                for (ty, d) in replies {
                    if ty == REP_META_CONTEXT && d.len() >= 4 && &d[4..] == q {
                        c.meta_context = Some(u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
                    }
                }
            }
        }

        let mut data = Vec::new();
        data.extend_from_slice(&(name.len() as u32).to_be_bytes());
        data.extend_from_slice(name.as_bytes());
        data.extend_from_slice(&0u16.to_be_bytes());
        c.send_option(OPT_GO, &data).await?;
        match c.option_replies(OPT_GO).await? {
            Ok(replies) => {
                for (ty, d) in replies {
                    if ty == REP_INFO && d.len() >= 12 {
                        let info = u16::from_be_bytes([d[0], d[1]]);
                        if info == INFO_EXPORT {
                            c.size = u64::from_be_bytes(d[2..10].try_into().unwrap());
                            c.flags = u16::from_be_bytes([d[10], d[11]]);
                        }
                    }
                }
            }
            Err((ty, msg)) => {
                return Err(proto(format!(
                    "NBD server refused export {name:?} ({ty:#x}): {msg}"
                )))
            }
        }
        Ok(c)
    }

    async fn send_option(&mut self, opt: u32, data: &[u8]) -> io::Result<()> {
        self.wr.write_u64(IHAVEOPT).await?;
        self.wr.write_u32(opt).await?;
        self.wr.write_u32(data.len() as u32).await?;
        self.wr.write_all(data).await?;
        self.wr.flush().await
    }

    /// The replies to one option up to its ACK, or its error.
    #[allow(clippy::type_complexity)]
    async fn option_replies(
        &mut self,
        opt: u32,
    ) -> io::Result<Result<Vec<(u32, Vec<u8>)>, (u32, String)>> {
        let mut out = Vec::new();
        loop {
            if self.rd.read_u64().await? != REPLY_MAGIC {
                return Err(proto("bad NBD option reply magic"));
            }
            if self.rd.read_u32().await? != opt {
                return Err(proto("NBD option reply for another option"));
            }
            let ty = self.rd.read_u32().await?;
            let len = self.rd.read_u32().await?;
            if len > MAX_OPTION_REPLY {
                return Err(proto("NBD option reply too long"));
            }
            let mut d = vec![0; len as usize];
            self.rd.read_exact(&mut d).await?;
            if ty & REP_ERR_BIT != 0 {
                return Ok(Err((ty, String::from_utf8_lossy(&d).into_owned())));
            }
            if ty == REP_ACK {
                return Ok(Ok(out));
            }
            out.push((ty, d));
        }
    }

    async fn request(
        &mut self,
        cmd: u16,
        flags: u16,
        offset: u64,
        len: u32,
        data: Option<&[u8]>,
    ) -> io::Result<u64> {
        self.cookie = self.cookie.wrapping_add(1);
        let mut h = [0u8; 28];
        h[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        h[4..6].copy_from_slice(&flags.to_be_bytes());
        h[6..8].copy_from_slice(&cmd.to_be_bytes());
        h[8..16].copy_from_slice(&self.cookie.to_be_bytes());
        h[16..24].copy_from_slice(&offset.to_be_bytes());
        h[24..28].copy_from_slice(&len.to_be_bytes());
        self.wr.write_all(&h).await?;
        if let Some(d) = data {
            self.wr.write_all(d).await?;
        }
        self.wr.flush().await?;
        Ok(self.cookie)
    }

    /// `len` bytes at `offset` lie in the export; a payload (read, write) also fits in one
    /// request.
    fn check_range(&self, offset: u64, len: usize, payload: bool) -> io::Result<()> {
        if (payload && len as u64 > MAX_REQUEST as u64)
            || offset.checked_add(len as u64).is_none_or(|e| e > self.size)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "NBD request {offset}+{len} outside the export (size {})",
                    self.size
                ),
            ));
        }
        Ok(())
    }

    /// Reads one reply to `cookie`. For reads, data lands in `buf`; for block status, the
    /// extents are appended to `extents`.
    async fn reply(
        &mut self,
        cookie: u64,
        base: u64,
        mut buf: Option<&mut [u8]>,
        mut extents: Option<&mut Vec<Extent>>,
    ) -> io::Result<()> {
        let mut failure: Option<io::Error> = None;
        loop {
            let magic = self.rd.read_u32().await?;
            if magic == SIMPLE_REPLY_MAGIC {
                let err = self.rd.read_u32().await?;
                let c = self.rd.read_u64().await?;
                if c != cookie {
                    return Err(proto("NBD reply for another request"));
                }
                if err != 0 {
                    return Err(nbd_error(err, ""));
                }
                if let Some(b) = buf.as_deref_mut() {
                    self.rd.read_exact(b).await?;
                }
                return Ok(());
            }
            if magic != STRUCTURED_REPLY_MAGIC {
                return Err(proto(format!("bad NBD reply magic {magic:#x}")));
            }
            let flags = self.rd.read_u16().await?;
            let ty = self.rd.read_u16().await?;
            let c = self.rd.read_u64().await?;
            let len = self.rd.read_u32().await?;
            if c != cookie {
                return Err(proto("NBD reply for another request"));
            }
            if len > MAX_REQUEST + 64 {
                return Err(proto("NBD reply chunk too long"));
            }
            match ty {
                CHUNK_NONE => {}
                CHUNK_OFFSET_DATA => {
                    let off = self.rd.read_u64().await?;
                    let n = (len as usize)
                        .checked_sub(8)
                        .ok_or_else(|| proto("short data chunk"))?;
                    let b = buf
                        .as_deref_mut()
                        .ok_or_else(|| proto("data chunk for a non-read"))?;
                    let start = off
                        .checked_sub(base)
                        .ok_or_else(|| proto("chunk before the read"))?
                        as usize;
                    let dst = b
                        .get_mut(start..start + n)
                        .ok_or_else(|| proto("data chunk outside the read"))?;
                    self.rd.read_exact(dst).await?;
                }
                CHUNK_OFFSET_HOLE => {
                    if len != 12 {
                        return Err(proto("bad hole chunk"));
                    }
                    let off = self.rd.read_u64().await?;
                    let n = self.rd.read_u32().await? as usize;
                    let b = buf
                        .as_deref_mut()
                        .ok_or_else(|| proto("hole chunk for a non-read"))?;
                    let start = off
                        .checked_sub(base)
                        .ok_or_else(|| proto("chunk before the read"))?
                        as usize;
                    b.get_mut(start..start + n)
                        .ok_or_else(|| proto("hole chunk outside the read"))?
                        .fill(0);
                }
                CHUNK_BLOCK_STATUS => {
                    if len < 4 || (len - 4) % 8 != 0 {
                        return Err(proto("bad block status chunk"));
                    }
                    let id = self.rd.read_u32().await?;
                    for _ in 0..(len - 4) / 8 {
                        let length = self.rd.read_u32().await? as u64;
                        let flags = self.rd.read_u32().await?;
                        if Some(id) == self.meta_context {
                            if let Some(e) = extents.as_deref_mut() {
                                e.push(Extent { length, flags });
                            }
                        }
                    }
                }
                t if t & CHUNK_ERROR_BIT != 0 => {
                    let mut d = vec![0; len as usize];
                    self.rd.read_exact(&mut d).await?;
                    let err = if d.len() >= 4 {
                        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
                    } else {
                        5
                    };
                    let msg = if d.len() >= 6 {
                        let ml = u16::from_be_bytes([d[4], d[5]]) as usize;
                        String::from_utf8_lossy(d.get(6..6 + ml).unwrap_or_default()).into_owned()
                    } else {
                        String::new()
                    };
                    // Later chunks of this reply still follow unless this one is the last.
                    failure.get_or_insert(nbd_error(err, &msg));
                }
                _ => {
                    let mut d = vec![0; len as usize];
                    self.rd.read_exact(&mut d).await?;
                }
            }
            if flags & CHUNK_FLAG_DONE != 0 {
                return failure.map_or(Ok(()), Err);
            }
        }
    }

    pub async fn read(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check_range(offset, buf.len(), true)?;
        let cookie = self
            .request(CMD_READ, 0, offset, buf.len() as u32, None)
            .await?;
        self.reply(cookie, offset, Some(buf), None).await
    }

    pub async fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check_range(offset, data.len(), true)?;
        let cookie = self
            .request(CMD_WRITE, 0, offset, data.len() as u32, Some(data))
            .await?;
        self.reply(cookie, offset, None, None).await
    }

    /// Writes `len` bytes at `offset` taken from `data` as they come, in NBD writes of at
    /// most `piece` bytes with several in flight: the next piece is sent while the server
    /// writes the last, and replies are matched by cookie (qemu-nbd may answer out of order).
    /// The bytes go from `data`'s buffers straight to the socket. On any error, or when
    /// `data` ends early ([`io::ErrorKind::UnexpectedEof`]), the connection is unusable.
    pub async fn write_stream<D>(
        &mut self,
        offset: u64,
        len: u64,
        piece: u32,
        data: &mut D,
    ) -> io::Result<()>
    where
        D: futures_util::Stream<Item = io::Result<bytes::Bytes>> + Unpin + ?Sized,
    {
        use futures_util::StreamExt;
        if offset.checked_add(len).is_none_or(|e| e > self.size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "NBD write {offset}+{len} outside the export (size {})",
                    self.size
                ),
            ));
        }
        let piece = piece.clamp(1, MAX_REQUEST) as u64;
        let count = len.div_ceil(piece);
        if count == 0 {
            return Ok(());
        }
        let first = self.cookie.wrapping_add(1);
        self.cookie = self.cookie.wrapping_add(count);
        let (rd, wr) = (&mut self.rd, &mut self.wr);
        let send = async {
            let mut pending = bytes::Bytes::new();
            let mut off = offset;
            for i in 0..count {
                let n = piece.min(offset + len - off);
                let mut h = [0u8; 28];
                h[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
                h[6..8].copy_from_slice(&CMD_WRITE.to_be_bytes());
                h[8..16].copy_from_slice(&first.wrapping_add(i).to_be_bytes());
                h[16..24].copy_from_slice(&off.to_be_bytes());
                h[24..28].copy_from_slice(&(n as u32).to_be_bytes());
                wr.write_all(&h).await?;
                let mut left = n;
                while left > 0 {
                    if pending.is_empty() {
                        pending = match data.next().await {
                            Some(b) => b?,
                            None => {
                                return Err(io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    "the data ended early",
                                ))
                            }
                        };
                        continue;
                    }
                    let take = (left as usize).min(pending.len());
                    let part = pending.split_to(take);
                    if wr.buffer().len() + part.len() <= BUFFER {
                        wr.write_all(&part).await?;
                    } else {
                        // Large buffers skip the copy into the BufWriter.
                        wr.flush().await?;
                        wr.get_mut().write_all(&part).await?;
                    }
                    left -= take as u64;
                }
                // Sent now, so the server works on it while the next piece arrives.
                wr.flush().await?;
                off += n;
            }
            Ok::<(), io::Error>(())
        };
        let receive = async {
            let mut failure: Option<io::Error> = None;
            for _ in 0..count {
                let (cookie, r) = write_reply(rd).await?;
                if cookie.wrapping_sub(first) >= count {
                    return Err(proto("NBD reply for another request"));
                }
                if let Err(e) = r {
                    failure.get_or_insert(e);
                }
            }
            failure.map_or(Ok(()), Err)
        };
        tokio::try_join!(send, receive).map(|_| ())
    }

    /// Zeroes a range; `punch` lets the server deallocate it.
    pub async fn zero(&mut self, offset: u64, len: u32, punch: bool) -> io::Result<()> {
        self.check_range(offset, len as usize, false)?;
        let flags = if punch { 0 } else { CMD_FLAG_NO_HOLE };
        let cookie = self
            .request(CMD_WRITE_ZEROES, flags, offset, len, None)
            .await?;
        self.reply(cookie, offset, None, None).await
    }

    pub async fn trim(&mut self, offset: u64, len: u32) -> io::Result<()> {
        self.check_range(offset, len as usize, false)?;
        let cookie = self.request(CMD_TRIM, 0, offset, len, None).await?;
        self.reply(cookie, offset, None, None).await
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if self.flags & TF_SEND_FLUSH == 0 {
            return Ok(());
        }
        let cookie = self.request(CMD_FLUSH, 0, 0, 0, None).await?;
        self.reply(cookie, 0, None, None).await
    }

    /// Allocation of `[offset, offset+len)`; the server may answer for less than asked.
    /// Without `base:allocation`, one data extent.
    pub async fn block_status(&mut self, offset: u64, len: u32) -> io::Result<Vec<Extent>> {
        self.check_range(offset, len as usize, false)?;
        if self.meta_context.is_none() {
            return Ok(vec![Extent {
                length: len as u64,
                flags: 0,
            }]);
        }
        let cookie = self.request(CMD_BLOCK_STATUS, 0, offset, len, None).await?;
        let mut out = Vec::new();
        self.reply(cookie, offset, None, Some(&mut out)).await?;
        if out.is_empty() {
            return Err(proto("block status without extents"));
        }
        Ok(out)
    }

    pub async fn disconnect(mut self) {
        let _ = self.request(CMD_DISC, 0, 0, 0, None).await;
    }
}

/// One whole reply to a write (simple, or structured chunks up to the one marked done): its
/// cookie and result.
async fn write_reply<R: AsyncRead + Unpin>(rd: &mut R) -> io::Result<(u64, io::Result<()>)> {
    let mut failure: Option<io::Error> = None;
    loop {
        let magic = rd.read_u32().await?;
        if magic == SIMPLE_REPLY_MAGIC {
            let err = rd.read_u32().await?;
            let c = rd.read_u64().await?;
            let r = if err != 0 {
                Err(nbd_error(err, ""))
            } else {
                Ok(())
            };
            return Ok((c, r));
        }
        if magic != STRUCTURED_REPLY_MAGIC {
            return Err(proto(format!("bad NBD reply magic {magic:#x}")));
        }
        let flags = rd.read_u16().await?;
        let ty = rd.read_u16().await?;
        let c = rd.read_u64().await?;
        let len = rd.read_u32().await?;
        if len > MAX_OPTION_REPLY {
            return Err(proto("NBD reply chunk too long for a write"));
        }
        let mut d = vec![0; len as usize];
        rd.read_exact(&mut d).await?;
        if ty & CHUNK_ERROR_BIT != 0 {
            let err = if d.len() >= 4 {
                u32::from_be_bytes([d[0], d[1], d[2], d[3]])
            } else {
                5
            };
            let msg = if d.len() >= 6 {
                let ml = u16::from_be_bytes([d[4], d[5]]) as usize;
                String::from_utf8_lossy(d.get(6..6 + ml).unwrap_or_default()).into_owned()
            } else {
                String::new()
            };
            failure.get_or_insert(nbd_error(err, &msg));
        } else if ty != CHUNK_NONE {
            return Err(proto(format!("NBD reply chunk {ty} for a write")));
        }
        if flags & CHUNK_FLAG_DONE != 0 {
            return Ok((c, failure.map_or(Ok(()), Err)));
        }
    }
}

fn nbd_error(code: u32, msg: &str) -> io::Error {
    let kind = match code {
        1 => io::ErrorKind::PermissionDenied,
        22 => io::ErrorKind::InvalidInput,
        28 => io::ErrorKind::StorageFull,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("NBD error {code}: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    /// A scripted server: handshake with structured replies and base:allocation, then
    /// answers one read with a data and a hole chunk, and one block status.
    async fn fake_server(mut s: tokio::io::DuplexStream) {
        s.write_u64(NBDMAGIC).await.unwrap();
        s.write_u64(IHAVEOPT).await.unwrap();
        s.write_u16(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)
            .await
            .unwrap();
        assert_eq!(s.read_u32().await.unwrap(), 3);
        loop {
            assert_eq!(s.read_u64().await.unwrap(), IHAVEOPT);
            let opt = s.read_u32().await.unwrap();
            let len = s.read_u32().await.unwrap();
            let mut d = vec![0; len as usize];
            s.read_exact(&mut d).await.unwrap();
            let reply = |ty: u32, data: Vec<u8>| {
                let mut r = Vec::new();
                r.extend_from_slice(&REPLY_MAGIC.to_be_bytes());
                r.extend_from_slice(&opt.to_be_bytes());
                r.extend_from_slice(&ty.to_be_bytes());
                r.extend_from_slice(&(data.len() as u32).to_be_bytes());
                r.extend_from_slice(&data);
                r
            };
            match opt {
                OPT_STRUCTURED_REPLY => s.write_all(&reply(REP_ACK, vec![])).await.unwrap(),
                OPT_SET_META_CONTEXT => {
                    let mut m = 7u32.to_be_bytes().to_vec();
                    m.extend_from_slice(b"base:allocation");
                    s.write_all(&reply(REP_META_CONTEXT, m)).await.unwrap();
                    s.write_all(&reply(REP_ACK, vec![])).await.unwrap();
                }
                OPT_GO => {
                    let mut info = INFO_EXPORT.to_be_bytes().to_vec();
                    info.extend_from_slice(&(1u64 << 20).to_be_bytes());
                    info.extend_from_slice(&(TF_SEND_FLUSH | 1).to_be_bytes());
                    s.write_all(&reply(REP_INFO, info)).await.unwrap();
                    s.write_all(&reply(REP_ACK, vec![])).await.unwrap();
                    break;
                }
                _ => panic!("unexpected option {opt}"),
            }
        }
        let chunk = |flags: u16, ty: u16, cookie: u64, payload: Vec<u8>| {
            let mut r = Vec::new();
            r.extend_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
            r.extend_from_slice(&flags.to_be_bytes());
            r.extend_from_slice(&ty.to_be_bytes());
            r.extend_from_slice(&cookie.to_be_bytes());
            r.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            r.extend_from_slice(&payload);
            r
        };
        loop {
            let mut h = [0u8; 28];
            if s.read_exact(&mut h).await.is_err() {
                return;
            }
            let cmd = u16::from_be_bytes([h[6], h[7]]);
            let cookie = u64::from_be_bytes(h[8..16].try_into().unwrap());
            let off = u64::from_be_bytes(h[16..24].try_into().unwrap());
            let len = u32::from_be_bytes(h[24..28].try_into().unwrap());
            match cmd {
                CMD_READ => {
                    let mut p = off.to_be_bytes().to_vec();
                    p.extend(std::iter::repeat_n(0xAB, (len / 2) as usize));
                    let a = chunk(0, CHUNK_OFFSET_DATA, cookie, p);
                    let mut p = (off + (len / 2) as u64).to_be_bytes().to_vec();
                    p.extend_from_slice(&(len - len / 2).to_be_bytes());
                    let b = chunk(CHUNK_FLAG_DONE, CHUNK_OFFSET_HOLE, cookie, p);
                    s.write_all(&a).await.unwrap();
                    s.write_all(&b).await.unwrap();
                }
                CMD_BLOCK_STATUS => {
                    let mut p = 7u32.to_be_bytes().to_vec();
                    for (l, f) in [(4096u32, 0u32), (len - 4096, STATE_HOLE | STATE_ZERO)] {
                        p.extend_from_slice(&l.to_be_bytes());
                        p.extend_from_slice(&f.to_be_bytes());
                    }
                    let r = chunk(CHUNK_FLAG_DONE, CHUNK_BLOCK_STATUS, cookie, p);
                    s.write_all(&r).await.unwrap();
                }
                CMD_WRITE => {
                    let mut d = vec![0; len as usize];
                    s.read_exact(&mut d).await.unwrap();
                    let mut r = SIMPLE_REPLY_MAGIC.to_be_bytes().to_vec();
                    // Writes past 512 KiB fail with ENOSPC, to test errors.
                    let err: u32 = if off >= 512 << 10 { 28 } else { 0 };
                    r.extend_from_slice(&err.to_be_bytes());
                    r.extend_from_slice(&cookie.to_be_bytes());
                    s.write_all(&r).await.unwrap();
                }
                CMD_DISC => return,
                _ => panic!("unexpected command {cmd}"),
            }
        }
    }

    #[tokio::test]
    async fn handshake_read_chunks_block_status_and_errors() {
        let (a, b) = duplex(1 << 20);
        let server = tokio::spawn(fake_server(b));
        let mut c = Client::handshake(a, "").await.unwrap();
        assert_eq!(c.size, 1 << 20);
        assert_eq!(c.meta_context, Some(7));
        let mut buf = vec![1u8; 8192];
        c.read(4096, &mut buf).await.unwrap();
        assert!(buf[..4096].iter().all(|b| *b == 0xAB));
        assert!(buf[4096..].iter().all(|b| *b == 0));
        let e = c.block_status(0, 65536).await.unwrap();
        assert_eq!(
            e,
            vec![
                Extent {
                    length: 4096,
                    flags: 0
                },
                Extent {
                    length: 61440,
                    flags: STATE_HOLE | STATE_ZERO
                }
            ]
        );
        // Streamed writes: pieces of 64 KiB pipelined, from buffers of odd sizes.
        let chunks = |total: usize| {
            let v: Vec<io::Result<bytes::Bytes>> = (0..total.div_ceil(10_000))
                .map(|i| {
                    Ok(bytes::Bytes::from(vec![
                        7u8;
                        10_000.min(total - i * 10_000)
                    ]))
                })
                .collect();
            futures_util::stream::iter(v)
        };
        c.write_stream(0, 300 << 10, 64 << 10, &mut chunks(300 << 10))
            .await
            .unwrap();
        let err = c
            .write_stream(448 << 10, 128 << 10, 32 << 10, &mut chunks(128 << 10))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        c.write(0, b"hello").await.unwrap();
        let err = c.write(600 << 10, b"x").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        // Outside the export: refused before anything is sent.
        assert!(c.read((1 << 20) - 1, &mut [0u8; 2]).await.is_err());
        c.disconnect().await;
        server.await.unwrap();
    }

    #[tokio::test]
    async fn old_style_servers_are_refused() {
        let (a, mut b) = duplex(1024);
        tokio::spawn(async move {
            b.write_u64(NBDMAGIC).await.unwrap();
            b.write_u64(0x0000_4202_8186_1253).await.unwrap();
        });
        assert!(Client::handshake(a, "").await.is_err());
    }
}
