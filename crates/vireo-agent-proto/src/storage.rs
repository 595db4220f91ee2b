//! Storage on a host: domains (folders or mounts laid out like oVirt's) and volumes in them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DomainSpec {
    pub id: String,
    /// `data`, `iso`, `export`.
    pub domain_type: String,
    /// `localfs`, `posixfs`, `nfs`.
    pub storage_type: String,
    pub address: Option<String>,
    pub path: String,
    pub vfs_type: Option<String>,
    pub mount_options: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DomainInfo {
    pub id: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub used_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VolumeInfo {
    pub domain_id: String,
    pub disk_id: String,
    pub volume_id: String,
    pub path: String,
    pub format: String,
    pub virtual_size: u64,
    pub actual_size: u64,
    pub parent: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum VolumeOperation {
    /// A new volume: `<domain>/images/<disk>/<volume>`, qcow2 (cow) or raw, sparse or not.
    Create {
        domain_id: String,
        disk_id: String,
        volume_id: String,
        format: String,
        size: u64,
        sparse: bool,
    },
    /// A qcow2 overlay on top of `parent_volume_id` (a snapshot).
    Snapshot {
        domain_id: String,
        disk_id: String,
        volume_id: String,
        parent_volume_id: String,
    },
    /// Merge `volume_id` into its parent (snapshot delete).
    Merge {
        domain_id: String,
        disk_id: String,
        volume_id: String,
    },
    Copy {
        from_domain_id: String,
        disk_id: String,
        volume_id: String,
        to_domain_id: String,
        to_disk_id: String,
        to_volume_id: String,
    },
    Resize {
        domain_id: String,
        disk_id: String,
        volume_id: String,
        size: u64,
    },
    Delete {
        domain_id: String,
        disk_id: String,
        volume_id: String,
    },
    Info {
        domain_id: String,
        disk_id: String,
        volume_id: String,
    },
}
