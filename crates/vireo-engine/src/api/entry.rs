//! `GET /ovirt-engine/api`: links to every collection, product info, special objects, summary.

use super::fault::ApiResult;
use super::Ctx;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use vireo_model::meta::{self, MethodKind};
use vireo_model::*;
use vireo_store::Filter;

pub const PRODUCT_VERSION: (i64, i64, i64, i64) = (4, 5, 7, 0);
const BLANK: &str = "00000000-0000-0000-0000-000000000000";

pub async fn entry_point(ctx: &Ctx<'_>, head: bool) -> ApiResult<Response> {
    let store = &ctx.engine.store;
    let count =
        |kind: &'static str, filter: Filter| async move { store.count(kind, &filter).await };
    let item = |total: i64, active: Option<i64>| {
        Some(Box::new(ApiSummaryItem {
            total: Some(total),
            active,
            ..Default::default()
        }))
    };
    let vms = count("vms", Filter::All).await?;
    let vms_up = count("vms", Filter::eq("status", "up")).await?;
    let hosts = count("hosts", Filter::All).await?;
    let hosts_up = count("hosts", Filter::eq("status", "up")).await?;
    let users = count("users", Filter::All).await?;
    let sds = count("storagedomains", Filter::All).await?;
    let sds_active = count("storagedomains", Filter::eq("status", "active")).await?;

    let (major, minor, build, revision) = PRODUCT_VERSION;
    let user_href = format!("/ovirt-engine/api/users/{}", ctx.principal.user_id);
    let user_ref = || {
        Some(Box::new(User {
            id: Some(ctx.principal.user_id.clone()),
            href: Some(user_href.clone()),
            ..Default::default()
        }))
    };
    let mut api = Api {
        product_info: Some(Box::new(ProductInfo {
            name: Some("oVirt Engine".into()),
            vendor: Some("ovirt.org".into()),
            instance_id: Some(ctx.engine.instance_id.clone()),
            version: Some(Box::new(Version {
                major: Some(major),
                minor: Some(minor),
                build: Some(build),
                revision: Some(revision),
                full_version: Some(format!(
                    "{major}.{minor}.{build}-vireo.{}",
                    env!("CARGO_PKG_VERSION")
                )),
                ..Default::default()
            })),
            ..Default::default()
        })),
        special_objects: Some(Box::new(SpecialObjects {
            blank_template: Some(Box::new(Template {
                id: Some(BLANK.into()),
                href: Some(format!("/ovirt-engine/api/templates/{BLANK}")),
                ..Default::default()
            })),
            root_tag: Some(Box::new(Tag {
                id: Some(BLANK.into()),
                href: Some(format!("/ovirt-engine/api/tags/{BLANK}")),
                ..Default::default()
            })),
            ..Default::default()
        })),
        time: Some(chrono::Utc::now().fixed_offset()),
        authenticated_user: user_ref(),
        effective_user: user_ref(),
        ..Default::default()
    };
    if ctx.principal.superuser {
        api.summary = Some(Box::new(ApiSummary {
            vms: item(vms, Some(vms_up)),
            hosts: item(hosts, Some(hosts_up)),
            users: item(users, None),
            storage_domains: item(sds, Some(sds_active)),
            ..Default::default()
        }));
    }
    api.links = collection_links();
    let link_header = api
        .links
        .iter()
        .map(|l| format!("<{}>; rel={}", l.href, l.rel))
        .collect::<Vec<_>>()
        .join(",");
    let mut res = if head {
        StatusCode::OK.into_response()
    } else {
        ctx.ok(StatusCode::OK, &api)
    };
    res.headers_mut()
        .insert(header::CONTENT_TYPE, ctx.format.content_type());
    if let Ok(v) = HeaderValue::from_str(&link_header) {
        res.headers_mut().insert(header::LINK, v);
    }
    Ok(res)
}

/// One link per top-level collection, and a `rel="X/search"` link after each searchable one.
fn collection_links() -> Vec<Link> {
    let root = meta::service(meta::ROOT_SERVICE);
    let mut out = Vec::new();
    for l in root.locators {
        let href = format!("/ovirt-engine/api/{}", l.segment);
        let svc = meta::service(l.service);
        let searchable = svc
            .methods_of(MethodKind::List)
            .next()
            .map(|m| m.params.iter().any(|p| p.name == "search"))
            .unwrap_or(false);
        out.push(Link {
            rel: l.segment.to_string(),
            href: href.clone(),
        });
        if searchable {
            let query = if l.segment == "events" {
                ";from={event_id}?search={query}"
            } else {
                "?search={query}"
            };
            out.push(Link {
                rel: format!("{}/search", l.segment),
                href: format!("{href}{query}"),
            });
        }
    }
    out
}
