//! Discord's published OpenAPI spec as the judge of every request body the bot sends to the simulator.
//!
//! The spec sits beside the checkout (`../shared/reference/discord-openapi.json`, MIT); a
//! missing file fails the test with its path, never skips it. A request is matched to the
//! spec's route (literal segments before parameters), and its JSON body (or a multipart
//! request's `payload_json`) is validated against that route's request schema with the
//! `jsonschema` crate (draft 2020-12, the dialect of OpenAPI 3.1).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

/// Where the spec is read from.
pub fn spec_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join("reference")
        .join("discord-openapi.json")
}

struct Route {
    method: String,
    /// `None` for a `{parameter}` segment.
    segments: Vec<Option<String>>,
    template: String,
    deprecated: bool,
    /// The request body schema with the spec's components beside it, so `$ref`s resolve.
    schema: Option<Value>,
}

pub struct Spec {
    routes: Vec<Route>,
    compiled: Mutex<HashMap<usize, Arc<jsonschema::Validator>>>,
}

/// The spec, read once per test process.
pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = spec_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "Discord's OpenAPI spec is needed to check what the bot sends, at {}: {e}",
                path.display()
            )
        });
        Spec::parse(&text)
    })
}

impl Spec {
    fn parse(text: &str) -> Self {
        let doc: Value = serde_json::from_str(text).expect("the spec is JSON");
        let components = doc["components"].clone();
        let mut routes = Vec::new();
        for (template, item) in doc["paths"].as_object().expect("spec paths") {
            for (method, op) in item.as_object().expect("path item") {
                if !["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                    continue;
                }
                let body = &op["requestBody"]["content"];
                let schema = body
                    .get("application/json")
                    .or_else(|| body.get("multipart/form-data"))
                    .map(|c| c["schema"].clone())
                    .map(|s| {
                        let mut root = serde_json::json!({ "allOf": [s] });
                        root["components"] = components.clone();
                        root
                    });
                routes.push(Route {
                    method: method.to_uppercase(),
                    segments: template
                        .trim_start_matches('/')
                        .split('/')
                        .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                        .collect(),
                    template: template.clone(),
                    deprecated: op["deprecated"].as_bool().unwrap_or(false)
                        || op["operationId"]
                            .as_str()
                            .is_some_and(|id| id.starts_with("deprecated_")),
                    schema,
                });
            }
        }
        Self {
            routes,
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// The route of `method path` (`path` after `/api/v10`), most literal segments first.
    fn route(&self, method: &str, path: &str) -> Option<(usize, &Route)> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.method == method && r.segments.len() == parts.len())
            .filter(|(_, r)| {
                r.segments
                    .iter()
                    .zip(&parts)
                    .all(|(s, p)| s.as_deref().is_none_or(|lit| lit == *p))
            })
            .max_by_key(|(_, r)| r.segments.iter().filter(|s| s.is_some()).count())
    }

    /// The spec's route template when the route is deprecated (still served by Discord).
    pub fn deprecated(&self, method: &str, path: &str) -> Option<String> {
        let p = path.strip_prefix("/api/v10")?;
        self.route(method, p)
            .filter(|(_, r)| r.deprecated)
            .map(|(_, r)| r.template.clone())
    }

    /// What Discord's spec says is wrong with this request: an unknown route, or a body its
    /// schema refuses.
    pub fn problems(&self, method: &str, path: &str, body: &Value) -> Vec<String> {
        let Some(p) = path.strip_prefix("/api/v10") else {
            return vec![format!("{path} is not under /api/v10")];
        };
        let Some((i, route)) = self.route(method, p) else {
            return vec![format!("{method} {p} is not a route of Discord's API")];
        };
        let mut out = Vec::new();
        let Some(schema) = &route.schema else {
            return out;
        };
        if body.is_null() {
            return out;
        }
        let validator = {
            let mut compiled = self.compiled.lock().unwrap();
            compiled
                .entry(i)
                .or_insert_with(|| {
                    Arc::new(
                        jsonschema::options()
                            .with_draft(jsonschema::Draft::Draft202012)
                            .build(schema)
                            .unwrap_or_else(|e| {
                                panic!(
                                    "the spec's schema for {} does not compile: {e}",
                                    route.template
                                )
                            }),
                    )
                })
                .clone()
        };
        for e in validator.iter_errors(body) {
            if tolerated(&e.instance_path.to_string(), &e.instance) {
                continue;
            }
            out.push(format!(
                "{method} {}: {} at `{}`",
                route.template, e, e.instance_path
            ));
        }
        out
    }
}

/// Where the spec is stricter than Discord, and serenity relies on Discord: a new attachment in
/// an edit is named by the index of its file (`{"id": 0}`), which Discord's documentation
/// describes ("the index of the file" for new attachments) and serenity 0.12 sends as a number,
/// while the spec's schema types every attachment id as a snowflake string. Nothing else is
/// tolerated.
fn tolerated(path: &str, value: &Value) -> bool {
    let mut parts = path.trim_start_matches('/').split('/');
    matches!(
        (
            parts.next(),
            parts.next().map(|i| i.parse::<usize>().is_ok()),
            parts.next(),
            parts.next()
        ),
        (Some("attachments"), Some(true), Some("id"), None)
    ) && value.is_u64()
}
