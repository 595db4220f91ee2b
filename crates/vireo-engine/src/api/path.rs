//! Resolves a request path through the model's service tree.

use super::fault::ApiError;
use vireo_model::meta::{self, ServiceDef};

#[derive(Debug, Clone)]
pub enum Node {
    /// A sub-service reached by its path segment (`vms`, `nics`, `cdroms`).
    Locate { service: usize, segment: String },
    /// A member of the collection before it, reached by its id.
    Item { service: usize, id: String },
}

impl Node {
    pub fn service(&self) -> &'static ServiceDef {
        match self {
            Node::Locate { service, .. } | Node::Item { service, .. } => meta::service(*service),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Resolved {
    pub nodes: Vec<Node>,
    pub action: Option<String>,
    /// Matrix parameters of the last segment (`/vms;max=1`).
    pub matrix: Vec<(String, String)>,
}

impl Resolved {
    pub fn service(&self) -> &'static ServiceDef {
        self.nodes
            .last()
            .map(Node::service)
            .unwrap_or_else(|| meta::service(meta::ROOT_SERVICE))
    }

    /// The canonical href of what the path names (without the action).
    pub fn href(&self) -> String {
        let mut h = String::from("/ovirt-engine/api");
        for n in &self.nodes {
            h.push('/');
            match n {
                Node::Locate { segment, .. } => h.push_str(segment),
                Node::Item { id, .. } => h.push_str(id),
            }
        }
        h
    }
}

/// `rest` is the path below `/ovirt-engine/api/` with any `v4/` prefix removed.
pub fn resolve(rest: &str) -> Result<Resolved, ApiError> {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let mut nodes = Vec::new();
    let mut action = None;
    let mut matrix = Vec::new();
    let mut current = meta::ROOT_SERVICE;
    for (i, raw) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let mut parts = raw.split(';');
        let encoded = parts.next().unwrap_or_default();
        let seg = percent_encoding::percent_decode_str(encoded)
            .decode_utf8_lossy()
            .into_owned();
        if last {
            for p in parts {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                matrix.push((
                    k.to_string(),
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned(),
                ));
            }
        }
        let svc = meta::service(current);
        if let Some(next) = svc.locator(&seg) {
            nodes.push(Node::Locate {
                service: next,
                segment: seg,
            });
            current = next;
        } else if last && svc.action(&seg).next().is_some() {
            action = Some(seg);
        } else if let Some(item) = svc.item {
            nodes.push(Node::Item {
                service: item,
                id: seg,
            });
            current = item;
        } else {
            return Err(ApiError::not_found(format!(
                "no resource at '/ovirt-engine/api/{rest}'"
            )));
        }
    }
    Ok(Resolved {
        nodes,
        action,
        matrix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_tree() {
        let r = resolve("vms/123/nics/456").unwrap();
        assert_eq!(r.service().name, "VmNicService");
        assert_eq!(r.href(), "/ovirt-engine/api/vms/123/nics/456");
        let r = resolve("vms/123/start").unwrap();
        assert_eq!(r.action.as_deref(), Some("start"));
        assert_eq!(r.service().name, "VmService");
        assert_eq!(resolve("").unwrap().service().name, "SystemService");
        assert!(resolve("nosuchthing").is_err());
        let r = resolve("vms;max=1").unwrap();
        assert_eq!(r.matrix, vec![("max".to_string(), "1".to_string())]);
    }
}
