//! What happens around a GraphQL request over HTTP, outside async-graphql's executor: Apollo's
//! Automatic Persisted Queries, parsing the document once, which operation runs and whether
//! it writes, and a stable `extensions.code` on every error async-graphql raises itself.
//!
//! These are not schema extensions on purpose: with any extension registered, async-graphql
//! runs every field of every response through the extension chain (two boxed futures and a
//! registry lookup per field), a large share of the cost of a page of tickets.

use async_graphql::extensions::apollo_persisted_queries::{CacheStorage, LruCacheStorage};
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Request, Response, ServerError};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::APQ_CACHE_ENTRIES;
use crate::error::ErrorCode;

/// What the HTTP layer needs to know about a parsed request before it runs.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// `query`, `mutation`, `subscription`, or `unknown` (for metrics).
    pub kind: &'static str,
    /// Whether the document holds a mutation: it needs a read-write transaction, and never
    /// runs from a GET.
    pub writes: bool,
}

/// Documents up to this long are kept parsed, by their text. With the entries below, a
/// client sending many distinct documents can make the cache hold at most some tens of MiB
/// (a parsed document is roughly ten times its text); real clients send a few dozen.
const PARSED_CACHE_MAX_QUERY: usize = 4 * 1024;
/// How many parsed documents are kept (least recently used go first).
const PARSED_CACHE_ENTRIES: usize = 256;

/// The persisted-query cache of one server, its parsed documents, and the preparation of its
/// requests.
#[derive(Clone)]
pub struct Preparer {
    persisted: LruCacheStorage,
    /// Clients send the same few documents over and over; async-graphql's parser was ~5% of
    /// ward's CPU answering `me`, a clone of the parsed document a fraction of that.
    parsed: LruCacheStorage,
}

impl Default for Preparer {
    fn default() -> Self {
        Preparer {
            persisted: LruCacheStorage::new(APQ_CACHE_ENTRIES),
            parsed: LruCacheStorage::new(PARSED_CACHE_ENTRIES),
        }
    }
}

#[derive(Deserialize)]
struct PersistedQuery {
    version: i32,
    #[serde(rename = "sha256Hash")]
    sha256_hash: String,
}

impl Preparer {
    /// Resolves a persisted query and parses the document (kept in the request, so
    /// async-graphql does not parse it again). Errors carry their code.
    pub async fn prepare(&self, request: &mut Request) -> Result<Operation, ServerError> {
        if let Some(value) = request.extensions.remove("persistedQuery") {
            self.persisted_query(request, value).await?;
        } else {
            self.parse(request).await?;
        }
        let operation_name = request.operation_name.clone();
        let document = request.parsed_query().map_err(parse_failed)?;
        let types: Vec<(Option<&str>, OperationType)> = match &document.operations {
            DocumentOperations::Single(op) => vec![(None, op.node.ty)],
            DocumentOperations::Multiple(map) => map.iter().map(|(name, op)| (Some(name.as_str()), op.node.ty)).collect(),
        };
        let chosen = match (&types[..], operation_name.as_deref()) {
            ([(_, only)], _) => Some(*only),
            (many, Some(name)) => many.iter().find(|(n, _)| *n == Some(name)).map(|(_, ty)| *ty),
            (_, None) => None,
        };
        Ok(Operation {
            kind: match chosen {
                Some(OperationType::Query) => "query",
                Some(OperationType::Mutation) => "mutation",
                Some(OperationType::Subscription) => "subscription",
                None => "unknown",
            },
            writes: types.iter().any(|(_, ty)| *ty == OperationType::Mutation),
        })
    }

    /// Apollo's Automatic Persisted Queries: the hash alone runs a remembered document; the
    /// hash with the text (checked against it) remembers it.
    async fn persisted_query(&self, request: &mut Request, value: async_graphql::Value) -> Result<(), ServerError> {
        let persisted: PersistedQuery = async_graphql::from_value(value)
            .map_err(|_| coded("the persistedQuery extension is malformed", "BAD_REQUEST"))?;
        if persisted.version != 1 {
            return Err(coded("only version 1 of persisted queries is supported", "BAD_REQUEST"));
        }
        if request.query.is_empty() {
            // Apollo clients resend the text when they see this message or code.
            let document = self
                .persisted
                .get(persisted.sha256_hash)
                .await
                .ok_or_else(|| coded("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND"))?;
            request.set_parsed_query(document);
            return Ok(());
        }
        let hash = format!("{:x}", Sha256::digest(request.query.as_bytes()));
        if persisted.sha256_hash != hash {
            return Err(coded("the persisted query's sha256Hash does not match its text", "BAD_REQUEST"));
        }
        let document = request.parsed_query().map_err(parse_failed)?.clone();
        self.persisted.set(hash, document).await;
        Ok(())
    }

    /// Parses the document, or takes it from the cache of documents parsed before.
    async fn parse(&self, request: &mut Request) -> Result<(), ServerError> {
        if request.query.len() > PARSED_CACHE_MAX_QUERY {
            return request.parsed_query().map(|_| ()).map_err(parse_failed);
        }
        if let Some(document) = self.parsed.get(request.query.clone()).await {
            request.set_parsed_query(document);
            return Ok(());
        }
        let document = request.parsed_query().map_err(parse_failed)?.clone();
        self.parsed.set(request.query.clone(), document).await;
        Ok(())
    }
}

/// Gives every error of `response` without a code one: ward's own errors carry theirs, so
/// these are async-graphql's — before execution (no path) validation, during it the input.
pub fn code_errors(response: &mut Response) {
    for error in &mut response.errors {
        let code = if error.path.is_empty() { validation_code(error) } else { ErrorCode::BadUserInput.as_str() };
        set_code(error, code);
    }
}

/// The code of an error async-graphql raised before execution, from its (fixed) message.
pub fn validation_code(error: &ServerError) -> &'static str {
    match error.message.as_str() {
        "Query is nested too deep." => "QUERY_TOO_DEEP",
        "Query is too complex." => "QUERY_TOO_COMPLEX",
        _ => ErrorCode::ValidationFailed.as_str(),
    }
}

/// Sets `code` unless the error has one.
pub fn set_code(error: &mut ServerError, code: &str) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
}

fn coded(message: &str, code: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    set_code(&mut error, code);
    error
}

fn parse_failed(error: ServerError) -> ServerError {
    let mut error = error;
    set_code(&mut error, ErrorCode::ParseFailed.as_str());
    error
}
