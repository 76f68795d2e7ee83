//! The store adapters: SQLite (embedded) and Postgres (shared), the outage-tolerant wrapper and its spill file.

pub mod postgres;
pub mod resilient;
mod rows;
pub mod spill;
pub mod sqlite;

use std::sync::Arc;

use crate::core::store::{AuditKey, Store, StoreError};

pub use postgres::PostgresStore;
pub use resilient::{ResilientStore, StoreUnavailable};
pub use sqlite::SqliteStore;

/// Opens the store named by a URL: `postgres://…`/`postgresql://…`, `sqlite::memory:`,
/// `sqlite:PATH`, or a bare file path (SQLite). New audit entries are keyed with `key`.
pub async fn open(url: &str, key: Option<AuditKey>) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(
            PostgresStore::connect(url).await?.with_audit_key(key),
        ));
    }
    let path = url.strip_prefix("sqlite:").unwrap_or(url);
    Ok(Arc::new(SqliteStore::open(path).await?.with_audit_key(key)))
}

/// Parses a stored list column (JSON text in SQLite).
pub(crate) fn json_list(s: &str) -> anyhow::Result<Vec<String>> {
    Ok(serde_json::from_str(s)?)
}

/// A lost connection (refused, closed, timed out, server shutting down) is `Unavailable`;
/// anything the store answered is `Failed`.
pub(crate) fn classify(e: anyhow::Error) -> StoreError {
    if is_connection_error(&e) {
        StoreError::Unavailable(format!("{e:#}"))
    } else {
        StoreError::Failed(e)
    }
}

fn is_connection_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        if c.is::<StoreUnavailable>() || c.is::<std::io::Error>() {
            return true;
        }
        if let Some(pe) = c.downcast_ref::<tokio_postgres::Error>() {
            if pe.is_closed() {
                return true;
            }
            // 08: connection exception; 57P0x: admin/crash shutdown, cannot connect now.
            if let Some(code) = pe.code() {
                let code = code.code();
                return code.starts_with("08") || code.starts_with("57P0");
            }
        }
        matches!(
            c.downcast_ref::<deadpool_postgres::PoolError>(),
            Some(deadpool_postgres::PoolError::Timeout(_) | deadpool_postgres::PoolError::Closed)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::store::{NewAuditEntry, verify_audit, verify_audit_paged};

    fn entry() -> NewAuditEntry {
        crate::core::store::tests::entry()
    }

    #[tokio::test]
    async fn verification_follows_the_chain_across_pages() {
        let store = SqliteStore::open(":memory:").await.unwrap();
        for i in 0..7 {
            let mut e = entry();
            e.duration_ms = i;
            store.append_audit(e).await.unwrap();
        }
        let report = verify_audit_paged(&store, &Default::default(), 2)
            .await
            .unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.checked, 7);
        // Entry 5 is the first of the third page: the gap must be seen across the page boundary.
        store
            .raw_sql("DELETE FROM audit_log WHERE id = 5")
            .await
            .unwrap();
        let report = verify_audit_paged(&store, &Default::default(), 2)
            .await
            .unwrap();
        assert_eq!(report.problem.unwrap().id, 6);
        assert_eq!(report.checked, 4);
    }
    #[tokio::test]
    async fn a_store_url_picks_the_adapter() {
        let s = open("sqlite::memory:", None).await.unwrap();
        s.append_audit(entry()).await.unwrap();
        assert!(verify_audit(&*s).await.unwrap().is_ok());
        let e = open("postgres://u:hunter22@127.0.0.1:1/db", None)
            .await
            .err()
            .unwrap();
        let chain = format!("{e:#}");
        assert!(chain.contains("127.0.0.1:1/db"), "{chain}");
        assert!(
            !chain.contains("hunter22"),
            "the password never shows: {chain}"
        );
    }
    #[tokio::test]
    async fn a_nul_character_in_an_entry_is_stored_replaced_and_still_verifies() {
        let store = SqliteStore::open(":memory:").await.unwrap();
        let mut e = entry();
        e.args = "service:api\0-1".into();
        e.target = vec!["a\0".into()];
        let stored = store.append_audit(e).await.unwrap();
        assert_eq!(stored.entry.args, "service:api\u{fffd}-1");
        assert_eq!(stored.entry.target, ["a\u{fffd}"]);
        assert!(verify_audit(&store).await.unwrap().is_ok());
    }
}
