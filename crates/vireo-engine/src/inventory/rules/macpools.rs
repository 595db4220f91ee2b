//! MAC address pools: ranges checked on add and edit, and the allocation of addresses to VM
//! NICs. An address is in use while some NIC has it (NICs index their address as `mac`), so
//! nothing needs releasing; a per-pool cursor (record kind [`CURSOR_KIND`]) makes allocation
//! walk forward instead of probing from the start of the range each time.

use super::common::*;
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::{crud, messages};
use axum::http::StatusCode;
use serde_json::{json, Value};
use vireo_store::{Filter, ObjectWrite, Tx};

/// Engine-private records: where each pool's allocation goes on from.
pub const CURSOR_KIND: &str = "_macpool_cursor";
/// Attribute of NIC records: their address, lower-case.
pub const MAC_ATTR: &str = "mac";
/// How many addresses one allocation looks at before it calls the pool full.
const PROBE_LIMIT: u64 = 65_536;

pub fn parse_mac(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut v = 0u64;
    for p in parts {
        if p.len() != 2 {
            return None;
        }
        v = (v << 8) | u64::from(u8::from_str_radix(p, 16).ok()?);
    }
    Some(v)
}

pub fn format_mac(v: u64) -> String {
    (0..6)
        .rev()
        .map(|i| format!("{:02x}", (v >> (i * 8)) & 0xff))
        .collect::<Vec<_>>()
        .join(":")
}

fn ranges(doc: &Value) -> Vec<(u64, u64)> {
    items(doc, "ranges", "range")
        .into_iter()
        .filter_map(|r| Some((parse_mac(str_at(r, "from")?)?, parse_mac(str_at(r, "to")?)?)))
        .collect()
}

pub async fn validate(_ctx: &Ctx<'_>, doc: &Value, action: &str) -> ApiResult<()> {
    let raw = items(doc, "ranges", "range");
    if raw.is_empty() {
        return Err(messages::invalid(
            action,
            "macpools",
            "MAC Pool must contain at least one MAC address range.",
        ));
    }
    let mut rs = Vec::new();
    for r in raw {
        let (from, to) = (
            str_at(r, "from").unwrap_or_default(),
            str_at(r, "to").unwrap_or_default(),
        );
        let (Some(f), Some(t)) = (parse_mac(from), parse_mac(to)) else {
            return Err(ApiError::operation_failed(
                StatusCode::BAD_REQUEST,
                &[format!(
                    "Cannot {action} MAC Pool. Invalid MAC address range {from}-{to}."
                )],
            ));
        };
        if f > t {
            return Err(messages::invalid(
                action,
                "macpools",
                &format!("The range {from}-{to} ends before it starts."),
            ));
        }
        rs.push((f, t));
    }
    rs.sort_unstable();
    if rs.windows(2).any(|w| w[1].0 <= w[0].1) {
        return Err(messages::invalid(
            action,
            "macpools",
            "MAC pool cannot contain overlapping ranges.",
        ));
    }
    Ok(())
}

pub async fn check_remove(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    if bool_at(doc, "default_pool") == Some(true) {
        return Err(messages::conflict(
            "remove",
            "macpools",
            "Default MAC Pool cannot be removed.",
        ));
    }
    let id = str_at(doc, "id").unwrap_or_default();
    let users = where_eq(ctx, "clusters", "mac_pool.id", id).await?;
    if !users.is_empty() {
        return Err(messages::conflict(
            "remove",
            "macpools",
            &format!("Several Clusters ({}) are using this MAC Pool:\n{}\n - Please remove it from all Clusters that are using it and try again.", users.len(), names(&users, 10)),
        ));
    }
    Ok(())
}

async fn in_use(tx: &mut Tx, mac: &str) -> ApiResult<bool> {
    Ok(tx.count("vms/nics", &Filter::eq(MAC_ATTR, mac)).await? > 0)
}

/// The pool of the cluster a VM runs in.
pub async fn pool_of_vm(tx: &mut Tx, vm: &str) -> ApiResult<Value> {
    let cluster = match tx.get("vms", vm).await? {
        Some(v) => ref_id(&crud::doc_of(&v)?, "cluster"),
        None => None,
    };
    let pool = match cluster {
        Some(c) => match tx.get("clusters", &c).await? {
            Some(cr) => ref_id(&crud::doc_of(&cr)?, "mac_pool"),
            None => None,
        },
        None => None,
    };
    let pool = pool.unwrap_or_else(|| crate::bootstrap::ids::MAC_POOL.to_string());
    match tx.get("macpools", &pool).await? {
        Some(p) => crud::doc_of(&p),
        None => Err(messages::conflict(
            "add",
            "vms/nics",
            "The MAC Address Pool of the Cluster does not exist.",
        )),
    }
}

/// The next free address of the pool; moves the pool's cursor past it.
pub async fn allocate(tx: &mut Tx, pool: &Value) -> ApiResult<String> {
    let id = str_at(pool, "id").unwrap_or_default().to_string();
    let rs = ranges(pool);
    let total: u64 = rs.iter().map(|(f, t)| t - f + 1).sum();
    if total == 0 {
        return Err(messages::conflict(
            "add",
            "vms/nics",
            "Not enough MAC addresses left in MAC Address Pool.",
        ));
    }
    let cursor_rec = tx.get(CURSOR_KIND, &id).await?;
    let start = cursor_rec
        .as_ref()
        .and_then(|r| serde_json::from_str::<Value>(&r.doc).ok())
        .and_then(|d| d.get("next").and_then(Value::as_u64))
        .unwrap_or(0);
    let nth = |mut i: u64| -> u64 {
        for (f, t) in &rs {
            let n = t - f + 1;
            if i < n {
                return f + i;
            }
            i -= n;
        }
        rs[0].0
    };
    let allow_duplicates = bool_at(pool, "allow_duplicates") == Some(true);
    for k in 0..total.min(PROBE_LIMIT) {
        let i = (start + k) % total;
        let mac = format_mac(nth(i));
        if allow_duplicates || !in_use(tx, &mac).await? {
            let w = ObjectWrite::new(
                CURSOR_KIND,
                id.clone(),
                json!({ "next": (i + 1) % total }).to_string(),
            );
            match cursor_rec {
                Some(_) => tx.update(&w, None).await?,
                None => tx.insert(&w).await?,
            };
            return Ok(mac);
        }
    }
    Err(messages::conflict(
        "add",
        "vms/nics",
        "Not enough MAC addresses left in MAC Address Pool.",
    ))
}

/// An address the client chose: well-formed, and free unless the pool allows duplicates.
pub async fn reserve(tx: &mut Tx, pool: &Value, mac: &str, action: &str) -> ApiResult<String> {
    let Some(v) = parse_mac(mac) else {
        return Err(ApiError::operation_failed(
            StatusCode::BAD_REQUEST,
            &[format!(
                "Cannot {action} Interface. Invalid MAC address {mac}."
            )],
        ));
    };
    let mac = format_mac(v);
    if bool_at(pool, "allow_duplicates") != Some(true) && in_use(tx, &mac).await? {
        return Err(ApiError::conflict(format!(
            "Cannot {action} Interface. MAC Address {mac} is already in use."
        )));
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip() {
        let v = parse_mac("56:6F:1a:02:00:ff").unwrap();
        assert_eq!(format_mac(v), "56:6f:1a:02:00:ff");
        assert!(parse_mac("56:6f:1a:02:00").is_none());
        assert!(parse_mac("56:6f:1a:02:00:zz").is_none());
        assert_eq!(
            format_mac(parse_mac("00:00:00:00:01:00").unwrap() - 1),
            "00:00:00:00:00:ff"
        );
    }
}
