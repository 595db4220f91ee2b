//! Image transfer: the engine opens a ticket on a host for one volume; clients then read or
//! write the image over the host's data path (`https://HOST:PORT/images/{ticket}`, the
//! ovirt-imageio protocol), authenticated by the ticket id alone.

use serde::{Deserialize, Serialize};

/// Paths below [`crate::PREFIX`].
pub mod paths {
    /// POST: add a ticket (`TicketSpec`).
    pub const TICKETS: &str = "/transfer/tickets";
    /// POST: check a volume after an upload (`VerifyRequest`).
    pub const VERIFY: &str = "/transfer/verify";
    /// The data path, outside the protocol's prefix.
    pub const IMAGES: &str = "/images";

    /// `/transfer/tickets/{id}`: GET status, DELETE remove.
    pub fn ticket(id: &str) -> String {
        format!("{TICKETS}/{id}")
    }

    /// `/transfer/tickets/{id}/extend`: POST (`ExtendTicket`).
    pub fn extend(id: &str) -> String {
        format!("{TICKETS}/{id}/extend")
    }
}

/// What a ticket allows on which volume.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TicketSpec {
    pub id: String,
    pub domain_id: String,
    pub disk_id: String,
    pub volume_id: String,
    /// `read` (download) or `write` (upload, which also reads).
    pub ops: Vec<String>,
    /// `raw`: guest data (through qemu-nbd); `cow`: the volume file's bytes as they are.
    pub format: String,
    /// Seconds the ticket lives unless extended.
    pub timeout_s: u64,
    /// Seconds without requests after which the engine may pause or cancel (reported only).
    pub inactivity_timeout_s: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TicketStatus {
    pub id: String,
    /// Bytes the image exposes (guest size for raw, file limit for cow).
    pub size: u64,
    /// Bytes read or written through the ticket so far.
    pub transferred: u64,
    /// A request is in flight.
    pub active: bool,
    /// Seconds since the last request ended (or since the ticket was added).
    pub idle_time_s: u64,
    /// Seconds until the ticket expires (0: expired).
    pub expires_in_s: u64,
    /// The data URL path (`/images/{id}`).
    pub url_path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExtendTicket {
    pub timeout_s: u64,
}

/// Checks an uploaded volume: its format is sound (`qemu-img check` for qcow2) and its
/// virtual size fits `max_virtual_size`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerifyRequest {
    pub domain_id: String,
    pub disk_id: String,
    pub volume_id: String,
    /// `raw` or `cow`: what the volume must be.
    pub format: String,
    pub max_virtual_size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerifyResult {
    pub ok: bool,
    /// Why not, when not.
    pub detail: Option<String>,
    pub virtual_size: u64,
    pub actual_size: u64,
}
