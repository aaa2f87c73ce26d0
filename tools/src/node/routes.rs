//! The node's HTTP API (docs/node.md documents every route): key/value tables, typed tables,
//! administration, `/metrics`. Handlers run the engine's blocking calls on tokio's blocking
//! pool; every failure is a JSON error `{"error": {"code", "message", "exit_code"}}` whose
//! `exit_code` is the one the CLI exits with for the same error.
//!
//! Invariants:
//! - A request is parsed and checked whole before anything is written: a bad body, a
//!   missing field or a wrong key type changes nothing.
//! - A write answered 200 with `"durable": true` is durable (the default); with
//!   `"sync": false` it is appended and durable after the next sync.

use super::Node;
use crate::cmd::kv::{bytes_json, json_bytes};
use crate::cmd::table::{json_columns, json_key, value_json};
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ectable_engine::table::{Condition, RangeQuery, Schema, TableBatch, Value, ValueRef};
use ectable_engine::{Error as EngineError, WriteBatch};
use serde::Deserialize;
use serde_json::{json, Value as JsonValue};
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Rows or items a range or scan returns at most per page.
pub const MAX_PAGE: usize = 10_000;

/// The router of every route.
pub fn router(node: Arc<Node>) -> Router {
    // A value may be as large as the engine's largest batch; a little more for JSON.
    let body_limit = node.s().engine.max_batch_bytes() * 2 + (64 << 10);
    Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/health", get(health))
        .route("/v1/status", get(status))
        .route("/v1/events", get(events))
        .route("/v1/sync", post(sync))
        .route("/v1/kv/{table}", get(kv_scan))
        .route("/v1/kv/{table}/get-many", post(kv_get_many))
        .route("/v1/kv/batch", post(kv_batch))
        .route(
            "/v1/kv/{table}/{key}",
            get(kv_get).put(kv_put).delete(kv_delete),
        )
        .route("/v1/tables", get(tables_list).post(tables_create))
        .route("/v1/tables/batch", post(tables_batch))
        .route(
            "/v1/tables/{table}",
            get(tables_describe).delete(tables_drop),
        )
        .route("/v1/tables/{table}/rows", put(rows_put))
        .route("/v1/tables/{table}/rows/get", post(rows_get))
        .route("/v1/tables/{table}/rows/delete", post(rows_delete))
        .route("/v1/tables/{table}/range", post(rows_range))
        .route("/v1/status/raw", get(status_raw))
        .route("/v1/admin/scrub", post(admin_scrub))
        .route("/v1/admin/rebuild", post(admin_rebuild))
        .route("/v1/admin/replace-plan", post(admin_replace_plan))
        .route("/v1/admin/replace", post(admin_replace))
        .route("/v1/admin/add-spare", post(admin_add_spare))
        .route("/v1/admin/online", post(admin_online))
        .route("/v1/admin/clean", post(admin_clean))
        .route("/v1/admin/checkpoint", post(admin_checkpoint))
        .route("/v1/admin/reopen", post(admin_reopen))
        .route("/v1/admin/backup", post(admin_backup))
        .fallback(not_found_route)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            body_limit,
            refuse_large_bodies,
        ))
        .with_state(node)
}

/// The most of a body too large to take that the node reads (and drops) before it answers
/// 413, and how long it reads it at most; a larger one is answered at once and its
/// connection closed.
const DRAIN_BYTES_MAX: u64 = 64 << 20;
const DRAIN_TIME_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// A request whose declared length (Content-Length) is over `limit` is answered 413
/// `body_too_large` without running its route. Its body is read and dropped first (up to
/// [`DRAIN_BYTES_MAX`]): a client that sends the whole body before it reads the answer, as
/// most do, then reads the 413 instead of a connection reset under its write. A body sent
/// without a length (chunked) meets the route's own limit instead.
async fn refuse_large_bodies(
    State(limit): State<usize>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(len) = declared.filter(|&l| l > limit as u64) else {
        return next.run(req).await;
    };
    if len <= DRAIN_BYTES_MAX {
        use futures_util::StreamExt;
        let mut body = req.into_body().into_data_stream();
        let _ = tokio::time::timeout(DRAIN_TIME_MAX, async {
            while let Some(Ok(_)) = body.next().await {}
        })
        .await;
    }
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "body_too_large",
        message: format!(
            "the request body is {len} bytes, more than the {limit} this node takes (twice a \
             stripe's payload and 64 KiB)"
        ),
        exit_code: crate::exit::DATA,
    }
    .into_response()
}

// ---------------------------------------------------------------------------------------
// Errors.

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    exit_code: i32,
}

impl ApiError {
    /// A 4xx answer (the request's fault), as opposed to the node's.
    pub fn is_client_error(&self) -> bool {
        self.status.is_client_error()
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            exit_code: crate::exit::DATA,
        }
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            exit_code: crate::exit::NO,
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        let exit_code = crate::exit::code_of(&e);
        let engine = e.chain().find_map(|c| c.downcast_ref::<EngineError>());
        let (status, code) = match engine {
            Some(EngineError::NoSuchTable(_)) => (StatusCode::NOT_FOUND, "no_such_table"),
            Some(EngineError::TableExists(_)) => (StatusCode::CONFLICT, "table_exists"),
            Some(EngineError::ConditionFailed { .. }) => {
                (StatusCode::PRECONDITION_FAILED, "condition_failed")
            }
            Some(EngineError::ValueTooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "value_too_large")
            }
            Some(EngineError::NoSpace(_)) => (StatusCode::INSUFFICIENT_STORAGE, "no_space"),
            Some(EngineError::ReservedTableName(_)) => {
                (StatusCode::BAD_REQUEST, "reserved_table_name")
            }
            Some(EngineError::WrongTableKind { .. }) => {
                (StatusCode::BAD_REQUEST, "wrong_table_kind")
            }
            Some(EngineError::DataLost { .. }) => (StatusCode::SERVICE_UNAVAILABLE, "data_lost"),
            Some(EngineError::TooFewDevices { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "too_few_devices")
            }
            Some(EngineError::Closed) => (StatusCode::SERVICE_UNAVAILABLE, "closed"),
            Some(EngineError::DeviceStillFails { .. }) => {
                (StatusCode::CONFLICT, "device_still_fails")
            }
            Some(EngineError::DeviceRefusesWrites { .. }) => {
                (StatusCode::CONFLICT, "device_refuses_writes")
            }
            _ => match exit_code {
                crate::exit::USAGE | crate::exit::DATA => (StatusCode::BAD_REQUEST, "bad_request"),
                crate::exit::NO => (StatusCode::NOT_FOUND, "not_found"),
                crate::exit::UNAVAILABLE | crate::exit::TEMPFAIL => {
                    (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
                }
                crate::exit::CANT_CREATE => (StatusCode::INSUFFICIENT_STORAGE, "no_space"),
                crate::exit::CONFIG => (StatusCode::CONFLICT, "config"),
                crate::exit::IO => (StatusCode::INTERNAL_SERVER_ERROR, "io"),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        };
        ApiError {
            status,
            code,
            message: crate::cmd::common::one_line(&e),
            exit_code,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        ApiError::from(anyhow::Error::from(e))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        let mut a = ApiError::bad_request(e.body_text());
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            a.status = StatusCode::PAYLOAD_TOO_LARGE;
            a.code = "body_too_large";
        }
        a
    }
}

/// A path that does not decode (a key that is not UTF-8 once percent-decoded): the JSON
/// error every other refusal gets, not axum's plain text.
impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> ApiError {
        ApiError::bad_request(format!(
            "{}: keys and table names in the path are UTF-8 (percent-encoded); binary keys go through get-many and batch with {{\"$bin\": base64}}",
            e.body_text()
        ))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::bad_request(e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.code,
            "message": self.message,
            "exit_code": self.exit_code,
        }});
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Runs a blocking engine call off the async workers, counting the outcome.
async fn blocking<T: Send + 'static>(
    node: &Arc<Node>,
    f: impl FnOnce(&Node) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let n = node.clone();
    let r = tokio::task::spawn_blocking(move || f(&n))
        .await
        .unwrap_or_else(|e| {
            Err(ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "internal",
                message: format!("the request's worker failed: {e}"),
                exit_code: crate::exit::SOFTWARE,
            })
        });
    node.count(match &r {
        Ok(_) => 2,
        Err(e) if e.status.is_client_error() => 4,
        Err(_) => 5,
    });
    r
}

async fn not_found_route() -> ApiError {
    ApiError::not_found("no such route (docs/node.md lists the API)")
}

// ---------------------------------------------------------------------------------------
// Small shared shapes.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WriteQuery {
    /// Wait until the write is durable (the default).
    sync: Option<bool>,
}

/// The answer to a write: with `sync`, once it is durable (on a blocking thread).
fn durable_answer(n: &Node, lsn: u64, sync: bool) -> ApiResult<Json<JsonValue>> {
    if sync {
        n.s().engine.wait_durable(lsn)?;
    }
    Ok(lsn_answer(lsn, sync))
}

fn lsn_answer(lsn: u64, durable: bool) -> Json<JsonValue> {
    Json(json!({"lsn": lsn, "durable": durable}))
}

fn body_json(r: Result<Json<JsonValue>, JsonRejection>) -> ApiResult<JsonValue> {
    Ok(r?.0)
}

fn field<'a>(o: &'a JsonValue, name: &str) -> ApiResult<&'a JsonValue> {
    o.get(name)
        .ok_or_else(|| ApiError::bad_request(format!("missing field \"{name}\"")))
}

fn only_fields(o: &JsonValue, allowed: &[&str], what: &str) -> ApiResult<()> {
    let JsonValue::Object(map) = o else {
        return Err(ApiError::bad_request(format!(
            "{what} must be a JSON object"
        )));
    };
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "{what}: unexpected field \"{k}\" (expected {})",
            allowed.join(", ")
        )));
    }
    Ok(())
}

fn sync_flag(o: &JsonValue) -> ApiResult<bool> {
    match o.get("sync") {
        None => Ok(true),
        Some(JsonValue::Bool(b)) => Ok(*b),
        Some(v) => Err(ApiError::bad_request(format!(
            "\"sync\" must be true or false, got {v}"
        ))),
    }
}

fn limit_of(v: Option<&JsonValue>, default: usize) -> ApiResult<usize> {
    match v {
        None => Ok(default),
        Some(JsonValue::Number(n)) => match n.as_u64() {
            Some(l) if (1..=MAX_PAGE as u64).contains(&l) => Ok(l as usize),
            _ => Err(ApiError::bad_request(format!(
                "\"limit\" must be 1..={MAX_PAGE}, got {n}"
            ))),
        },
        Some(v) => Err(ApiError::bad_request(format!(
            "\"limit\" must be a number, got {v}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Node-wide routes.

async fn metrics(State(node): State<Arc<Node>>) -> ApiResult<Response> {
    let text = blocking(&node, |n| Ok(n.render_metrics())).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn health(State(node): State<Arc<Node>>) -> ApiResult<Json<JsonValue>> {
    blocking(&node, |n| {
        let st = n.s().engine.status();
        Ok(Json(json!({
            "state": st.state().as_str(),
            "redundancy_left": st.redundancy_left,
            "durable_lsn": st.durable_lsn,
            "writes_stopped": st.writes_stopped.is_some(),
        })))
    })
    .await
}

async fn status(State(node): State<Arc<Node>>) -> ApiResult<Json<JsonValue>> {
    blocking(&node, |n| {
        Ok(Json(crate::cmd::status::status_json(
            &n.s().engine.status(),
        )))
    })
    .await
}

async fn events(State(node): State<Arc<Node>>) -> ApiResult<Json<JsonValue>> {
    blocking(&node, |n| Ok(Json(n.recent_events()))).await
}

async fn sync(State(node): State<Arc<Node>>) -> ApiResult<Json<JsonValue>> {
    blocking(&node, |n| {
        let lsn = n.s().engine.sync()?;
        Ok(Json(json!({"durable_lsn": lsn})))
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Key/value tables.

async fn kv_put(
    State(node): State<Arc<Node>>,
    path: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<WriteQuery>, QueryRejection>,
    body: Bytes,
) -> ApiResult<Json<JsonValue>> {
    let Path((table, key)) = path?;
    let sync = q?.sync.unwrap_or(true);
    // The append runs here (it copies the value into the stripe being filled: microseconds,
    // unless the writer holds appends back); the wait for durability is the node's one
    // waiter thread's, shared by every request in flight (durable.rs).
    let r = (|| {
        node.refuse_typed(&table)?;
        Ok::<_, ApiError>(node.s().engine.put(&table, key.as_bytes(), &body)?)
    })();
    let r = match r {
        Ok(lsn) if sync => node.s().durable.wait(lsn).await.map(|_| lsn),
        r => r,
    };
    node.count_result(&r);
    Ok(lsn_answer(r?, sync))
}

async fn kv_get(
    State(node): State<Arc<Node>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let Path((table, key)) = path?;
    blocking(&node, move |n| {
        n.refuse_typed(&table)?;
        match n.s().engine.get(&table, key.as_bytes())? {
            Some(v) => {
                Ok(([(header::CONTENT_TYPE, "application/octet-stream")], v).into_response())
            }
            None => Err(ApiError::not_found(crate::cmd::kv::not_found(
                &n.s().engine,
                &table,
                &key,
            ))),
        }
    })
    .await
}

async fn kv_delete(
    State(node): State<Arc<Node>>,
    path: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<WriteQuery>, QueryRejection>,
) -> ApiResult<Json<JsonValue>> {
    let Path((table, key)) = path?;
    let sync = q?.sync.unwrap_or(true);
    blocking(&node, move |n| {
        n.refuse_typed(&table)?;
        let lsn = n.s().engine.delete(&table, key.as_bytes())?;
        durable_answer(n, lsn, sync)
    })
    .await
}

async fn kv_get_many(
    State(node): State<Arc<Node>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Json<JsonValue>> {
    let Path(table) = path?;
    let body = body_json(body)?;
    only_fields(&body, &["keys"], "the body")?;
    let JsonValue::Array(items) = field(&body, "keys")? else {
        return Err(ApiError::bad_request("\"keys\" must be an array"));
    };
    if items.len() > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_PAGE} keys per request, got {}",
            items.len()
        )));
    }
    let keys = items
        .iter()
        .enumerate()
        .map(|(i, k)| json_bytes(k, &format!("keys[{i}]")).map_err(ApiError::bad_request))
        .collect::<ApiResult<Vec<Vec<u8>>>>()?;
    blocking(&node, move |n| {
        n.refuse_typed(&table)?;
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        let values = n.s().engine.get_many(&table, &refs)?;
        let out: Vec<JsonValue> = values
            .iter()
            .map(|v| v.as_deref().map_or(JsonValue::Null, bytes_json))
            .collect();
        Ok(Json(json!({"values": out})))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanQuery {
    /// First key (inclusive).
    from: Option<String>,
    /// Resume after this key (exclusive): the `next` of the previous page.
    after: Option<String>,
    /// End key (exclusive).
    to: Option<String>,
    limit: Option<usize>,
}

async fn kv_scan(
    State(node): State<Arc<Node>>,
    path: Result<Path<String>, PathRejection>,
    q: Result<Query<ScanQuery>, QueryRejection>,
) -> ApiResult<Json<JsonValue>> {
    let Path(table) = path?;
    let q = q?.0;
    let limit = limit_of(q.limit.map(|l| json!(l)).as_ref(), 100)?;
    if q.from.is_some() && q.after.is_some() {
        return Err(ApiError::bad_request(
            "give \"from\" or \"after\", not both",
        ));
    }
    blocking(&node, move |n| {
        n.refuse_typed(&table)?;
        let from = match (&q.after, &q.from) {
            (Some(a), _) => Bound::Excluded(a.as_bytes()),
            (None, Some(f)) => Bound::Included(f.as_bytes()),
            (None, None) => Bound::Unbounded,
        };
        let to =
            q.to.as_ref()
                .map_or(Bound::Unbounded, |t| Bound::Excluded(t.as_bytes()));
        // One more than the page: whether there is a next page.
        let mut rows = n.s().engine.scan(&table, from, to, limit + 1)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(|(k, _)| bytes_json(k))
        } else {
            None
        };
        let items: Vec<JsonValue> = rows
            .iter()
            .map(|(k, v)| json!({"key": bytes_json(k), "value": bytes_json(v)}))
            .collect();
        Ok(Json(json!({"items": items, "next": next})))
    })
    .await
}

async fn kv_batch(
    State(node): State<Arc<Node>>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Json<JsonValue>> {
    let body = body_json(body)?;
    only_fields(&body, &["ops", "sync"], "the body")?;
    let sync = sync_flag(&body)?;
    let JsonValue::Array(ops) = field(&body, "ops")? else {
        return Err(ApiError::bad_request("\"ops\" must be an array"));
    };
    let mut parsed: Vec<(String, Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let what = format!("ops[{i}]");
        only_fields(op, &["op", "table", "key", "value"], &what)?;
        let table = field(op, "table")?
            .as_str()
            .ok_or_else(|| ApiError::bad_request(format!("{what}: \"table\" must be a string")))?
            .to_string();
        let key =
            json_bytes(field(op, "key")?, &format!("{what}.key")).map_err(ApiError::bad_request)?;
        let value = match field(op, "op")?.as_str() {
            Some("put") => Some(
                json_bytes(field(op, "value")?, &format!("{what}.value"))
                    .map_err(ApiError::bad_request)?,
            ),
            Some("delete") => None,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{what}: \"op\" must be \"put\" or \"delete\""
                )))
            }
        };
        parsed.push((table, key, value));
    }
    if parsed.is_empty() {
        return Err(ApiError::bad_request("\"ops\" is empty"));
    }
    blocking(&node, move |n| {
        let mut b = WriteBatch::new();
        for (t, k, v) in &parsed {
            n.refuse_typed(t)?;
            match v {
                Some(v) => b.put(t, k, v),
                None => b.delete(t, k),
            };
        }
        let lsn = n.s().engine.write_batch(&b)?;
        durable_answer(n, lsn, sync)
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Typed tables.

fn schema_of(n: &Node, table: &str) -> ApiResult<Schema> {
    n.s()
        .tables
        .schema(table)
        .ok_or_else(|| EngineError::NoSuchTable(table.to_string()).into())
}

fn key_arg(schema: &Schema, v: &JsonValue, what: &str, partial: bool) -> ApiResult<Vec<Value>> {
    json_key(schema, v, what, partial).map_err(ApiError::bad_request)
}

fn condition(schema: &Schema, v: Option<&JsonValue>) -> ApiResult<Option<Condition>> {
    let Some(v) = v else { return Ok(None) };
    match v {
        JsonValue::String(s) if s == "exists" => Ok(Some(Condition::RowExists)),
        JsonValue::String(s) if s == "absent" => Ok(Some(Condition::RowAbsent)),
        JsonValue::Object(o) if o.len() == 2 && o.contains_key("column") => {
            let column = o["column"]
                .as_str()
                .ok_or_else(|| ApiError::bad_request("\"if\".column must be a string"))?;
            let value = crate::cmd::table::json_value(field(v, "equals")?, "\"if\".equals")
                .map_err(ApiError::bad_request)?;
            if schema.key_column_index(column).is_some() {
                return Err(ApiError::bad_request(format!(
                    "\"if\": '{column}' is a primary-key column; conditions test attribute columns"
                )));
            }
            Ok(Some(Condition::column_equals(column, value)))
        }
        _ => Err(ApiError::bad_request(
            "\"if\" must be \"exists\", \"absent\" or {\"column\": NAME, \"equals\": VALUE}",
        )),
    }
}

fn row_json(schema: &Schema, row: &ectable_engine::table::Row) -> JsonValue {
    let columns = row
        .columns
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_value_ref()));
    row_json_of(schema, &row.key, columns)
}

/// A row as the API shows it (`{"pk": {...}, "cols": {...}}`, as `ectable export` writes it).
fn row_json_of<'a>(
    schema: &Schema,
    key: &[Value],
    columns: impl Iterator<Item = (&'a str, ValueRef<'a>)>,
) -> JsonValue {
    let cols: serde_json::Map<String, JsonValue> = columns
        .map(|(k, v)| (k.to_string(), value_json(v)))
        .collect();
    json!({"pk": key_json(schema, key), "cols": cols})
}

fn key_json(schema: &Schema, key: &[Value]) -> JsonValue {
    let mut o = serde_json::Map::new();
    for (c, v) in schema.key_columns().iter().zip(key) {
        o.insert(c.name.clone(), value_json(v.as_value_ref()));
    }
    JsonValue::Object(o)
}

async fn tables_list(State(node): State<Arc<Node>>) -> ApiResult<Json<JsonValue>> {
    blocking(&node, |n| {
        let list: Vec<JsonValue> = n
            .s()
            .tables
            .list_tables()
            .iter()
            .map(crate::cmd::table::info_json)
            .collect();
        Ok(Json(json!({"tables": list})))
    })
    .await
}

async fn tables_create(
    State(node): State<Arc<Node>>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Json<JsonValue>> {
    let body = body_json(body)?;
    only_fields(&body, &["table", "pk"], "the body")?;
    let name = field(&body, "table")?
        .as_str()
        .ok_or_else(|| ApiError::bad_request("\"table\" must be a string"))?
        .to_string();
    let pk = field(&body, "pk")?
        .as_str()
        .ok_or_else(|| ApiError::bad_request("\"pk\" must be a string such as \"id:int64\""))?;
    let schema = Schema::parse(pk).map_err(|e| ApiError::bad_request(format!("pk: {e}")))?;
    if name.starts_with('$') {
        return Err(EngineError::ReservedTableName(name).into());
    }
    blocking(&node, move |n| {
        n.s().tables.create_table(&name, &schema)?;
        Ok(Json(crate::cmd::table::info_json(
            &n.s().tables.describe_table(&name)?,
        )))
    })
    .await
}

async fn tables_describe(
    State(node): State<Arc<Node>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<JsonValue>> {
    let Path(table) = path?;
    blocking(&node, move |n| {
        Ok(Json(crate::cmd::table::info_json(
            &n.s().tables.describe_table(&table)?,
        )))
    })
    .await
}

async fn tables_drop(
    State(node): State<Arc<Node>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<JsonValue>> {
    let Path(table) = path?;
    blocking(&node, move |n| {
        let info = n.s().tables.describe_table(&table)?;
        n.s().tables.drop_table(&table)?;
        n.s().engine.sync()?;
        Ok(Json(json!({"dropped": table, "rows": info.row_count})))
    })
    .await
}

async fn rows_put(
    State(node): State<Arc<Node>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Json<JsonValue>> {
    let Path(table) = path?;
    let body = body_json(body)?;
    only_fields(&body, &["pk", "cols", "if", "sync"], "the body")?;
    let sync = sync_flag(&body)?;
    blocking(&node, move |n| {
        let schema = schema_of(n, &table)?;
        let key = key_arg(&schema, field(&body, "pk")?, "pk", false)?;
        let cols = match body.get("cols") {
            None => Default::default(),
            Some(c) => json_columns(c, "cols").map_err(ApiError::bad_request)?,
        };
        let lsn = match condition(&schema, body.get("if"))? {
            None => n.s().tables.put_row(&table, &key, &cols)?,
            Some(c) => n.s().tables.put_row_if(&table, &key, &cols, &c)?,
        };
        durable_answer(n, lsn, sync)
    })
    .await
}

async fn rows_get(
    State(node): State<Arc<Node>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Json<JsonValue>> {
    let Path(table) = path?;
    let body = body_json(body)?;
    only_fields(&body, &["pk", "pks"], "the body")?;
    blocking(&node, move |n| {
        let schema = schema_of(n, &table)?;
        match (body.get("pk"), body.get("pks")) {
            (Some(pk), None) => {
                let key = key_arg(&schema, pk, "pk", false)?;
                match n.s().tables.get_row(&table, &key)? {
                    Some(row) => Ok(Json(json!({"row": row_json(&schema, &row)}))),
                    None => Err(ApiError::not_found(format!(
                        "row {pk} not found in table '{table}'"
                    ))),
                }
            }
            (None, Some(JsonValue::Array(pks))) => {
                if pks.len() > MAX_PAGE {
                    return Err(ApiError::bad_request(format!(
                        "at most {MAX_PAGE} keys per request"
                    )));
                }
                let keys = pks
                    .iter()
                    .enumerate()
                    .map(|(i, k)| key_arg(&schema, k, &format!("pks[{i}]"), false))
                    .collect::<ApiResult<Vec<_>>>()?;
                let rows = n.s().tables.get_rows(&table, &keys)?;
                let out: Vec<JsonValue> = rows
                    .iter()
                    .map(|r| r.as_ref().map_or(JsonValue::Null, |r| row_json(&schema, r)))
                    .collect();
                Ok(Json(json!({"rows": out})))
            }
            _ => Err(ApiError::bad_request(
                "give \"pk\" (one key object) or \"pks\" (an array of them)",
            )),
        }
    })
    .await
}

async fn rows_delete(
    State(node): State<Arc<Node>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Json<JsonValue>> {
    let Path(table) = path?;
    let body = body_json(body)?;
    only_fields(&body, &["pk", "if", "sync"], "the body")?;
    let sync = sync_flag(&body)?;
    blocking(&node, move |n| {
        let schema = schema_of(n, &table)?;
        let key = key_arg(&schema, field(&body, "pk")?, "pk", false)?;
        let lsn = match condition(&schema, body.get("if"))? {
            None => n.s().tables.delete_row(&table, &key)?,
            Some(c) => n.s().tables.delete_row_if(&table, &key, &c)?,
        };
        durable_answer(n, lsn, sync)
    })
    .await
}

async fn rows_range(
    State(node): State<Arc<Node>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Json<JsonValue>> {
    let Path(table) = path?;
    let body = body_json(body)?;
    only_fields(
        &body,
        &["from", "to", "prefix", "reverse", "limit", "next"],
        "the body",
    )?;
    let limit = limit_of(body.get("limit"), 100)?;
    let reverse = match body.get("reverse") {
        None => false,
        Some(JsonValue::Bool(b)) => *b,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "\"reverse\" must be true or false, got {v}"
            )))
        }
    };
    blocking(&node, move |n| {
        let schema = schema_of(n, &table)?;
        let mut q = RangeQuery::new().limit(limit).reverse(reverse);
        if let Some(f) = body.get("from") {
            q = q.start(Bound::Included(key_arg(&schema, f, "from", true)?));
        }
        if let Some(t) = body.get("to") {
            q = q.end(Bound::Excluded(key_arg(&schema, t, "to", true)?));
        }
        if let Some(p) = body.get("prefix") {
            q = q.prefix(key_arg(&schema, p, "prefix", true)?);
        }
        if let Some(next) = body.get("next") {
            q = q.resume_from(key_arg(&schema, next, "next", false)?);
        }
        let page = n.s().tables.range_view(&table, &q)?;
        let rows: Vec<JsonValue> = page
            .rows
            .iter()
            .map(|r| row_json_of(&schema, &r.key, r.columns.iter()))
            .collect();
        let next = page.next_start.as_ref().map(|k| key_json(&schema, k));
        Ok(Json(json!({"rows": rows, "next": next})))
    })
    .await
}

async fn tables_batch(
    State(node): State<Arc<Node>>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Json<JsonValue>> {
    let body = body_json(body)?;
    only_fields(&body, &["ops", "sync"], "the body")?;
    let sync = sync_flag(&body)?;
    let JsonValue::Array(ops) = field(&body, "ops")?.clone() else {
        return Err(ApiError::bad_request("\"ops\" must be an array"));
    };
    if ops.is_empty() {
        return Err(ApiError::bad_request("\"ops\" is empty"));
    }
    blocking(&node, move |n| {
        let mut b = TableBatch::new();
        for (i, op) in ops.iter().enumerate() {
            let what = format!("ops[{i}]");
            only_fields(op, &["op", "table", "pk", "cols", "if"], &what)?;
            let table = field(op, "table")?.as_str().ok_or_else(|| {
                ApiError::bad_request(format!("{what}: \"table\" must be a string"))
            })?;
            let schema = schema_of(n, table)?;
            let key = key_arg(&schema, field(op, "pk")?, &format!("{what}.pk"), false)?;
            let cond = condition(&schema, op.get("if"))?;
            match field(op, "op")?.as_str() {
                Some("put") => {
                    let cols = match op.get("cols") {
                        None => Default::default(),
                        Some(c) => json_columns(c, &format!("{what}.cols"))
                            .map_err(ApiError::bad_request)?,
                    };
                    match cond {
                        None => b.put_row(table, &key, &cols),
                        Some(c) => b.put_row_if(table, &key, &cols, &c),
                    };
                }
                Some("delete") => {
                    match cond {
                        None => b.delete_row(table, &key),
                        Some(c) => b.delete_row_if(table, &key, &c),
                    };
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "{what}: \"op\" must be \"put\" or \"delete\""
                    )))
                }
            }
        }
        let lsn = n.s().tables.write(&b)?;
        durable_answer(n, lsn, sync)
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Administration.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProgressQuery {
    /// Stream progress lines (NDJSON) before the result.
    progress: Option<bool>,
}

type Work = Box<dyn FnOnce(&Node, &mut dyn FnMut(JsonValue)) -> anyhow::Result<JsonValue> + Send>;

/// Long work (scrub, rebuild, replace): its JSON result when done, or with `?progress=true`
/// an NDJSON stream: `{"progress": {...}}` lines as it goes, then one `{"result": {...}}`
/// or `{"error": {...}}` line (the status code is 200 once the stream has started).
async fn long_work(node: Arc<Node>, stream: bool, work: Work) -> ApiResult<Response> {
    if !stream {
        let r = blocking(&node, move |n| Ok(work(n, &mut |_| {})?)).await?;
        return Ok(Json(r).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(16);
    let n = node.clone();
    tokio::task::spawn_blocking(move || {
        let mut last: Option<std::time::Instant> = None;
        let r = work(&n, &mut |p| {
            // A few lines a second are enough for a progress bar.
            if last.is_none_or(|l| l.elapsed() >= std::time::Duration::from_millis(200)) {
                last = Some(std::time::Instant::now());
                let _ = tx.blocking_send(format!("{}\n", json!({"progress": p})));
            }
        });
        let line = match r {
            Ok(v) => {
                n.count(2);
                json!({"result": v})
            }
            Err(e) => {
                let e = ApiError::from(e);
                n.count(if e.status.is_client_error() { 4 } else { 5 });
                json!({"error": {"code": e.code, "message": e.message, "exit_code": e.exit_code}})
            }
        };
        let _ = tx.blocking_send(format!("{line}\n"));
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

fn opt_body(body: Result<Json<JsonValue>, JsonRejection>) -> ApiResult<JsonValue> {
    match body {
        Ok(b) => Ok(b.0),
        // No body at all: the defaults.
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(json!({})),
        Err(e) => Err(e.into()),
    }
}

fn u64_field(o: &JsonValue, name: &str) -> ApiResult<Option<u64>> {
    match o.get(name) {
        None | Some(JsonValue::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "\"{name}\" must be a non-negative integer, got {v}"
            ))
        }),
    }
}

/// `"rate"` in bytes per second (0 or absent: unlimited), refused below what the CLI's
/// `--rate` takes: a few bytes per second would hold the node's one long-running job for
/// days.
fn rate_field(o: &JsonValue) -> ApiResult<u64> {
    let rate = u64_field(o, "rate")?.unwrap_or(0);
    let least = crate::cmd::common::MIN_RATE_BYTES_PER_SEC;
    if rate != 0 && rate < least {
        return Err(ApiError::bad_request(format!(
            "\"rate\": {rate} bytes per second would take days over a real array; give at least {least} (bytes per second), or 0 for no limit"
        )));
    }
    Ok(rate)
}

fn str_field<'a>(o: &'a JsonValue, name: &str) -> ApiResult<Option<&'a str>> {
    match o.get(name) {
        None | Some(JsonValue::Null) => Ok(None),
        Some(JsonValue::String(s)) => Ok(Some(s)),
        Some(v) => Err(ApiError::bad_request(format!(
            "\"{name}\" must be a string, got {v}"
        ))),
    }
}

fn bool_field(o: &JsonValue, name: &str) -> ApiResult<bool> {
    match o.get(name) {
        None | Some(JsonValue::Null) => Ok(false),
        Some(JsonValue::Bool(b)) => Ok(*b),
        Some(v) => Err(ApiError::bad_request(format!(
            "\"{name}\" must be true or false, got {v}"
        ))),
    }
}

async fn admin_scrub(
    State(node): State<Arc<Node>>,
    q: Result<Query<ProgressQuery>, QueryRejection>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Response> {
    let stream = q?.progress.unwrap_or(false);
    let body = opt_body(body)?;
    only_fields(&body, &["repair", "rate"], "the body")?;
    let repair = bool_field(&body, "repair")?;
    let rate = rate_field(&body)?;
    long_work(node, stream, Box::new(move |n, p| n.scrub(repair, rate, p))).await
}

async fn admin_rebuild(
    State(node): State<Arc<Node>>,
    q: Result<Query<ProgressQuery>, QueryRejection>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Response> {
    let stream = q?.progress.unwrap_or(false);
    let body = opt_body(body)?;
    only_fields(&body, &["rate"], "the body")?;
    let rate = rate_field(&body)?;
    long_work(node, stream, Box::new(move |n, p| n.rebuild(rate, p))).await
}

async fn admin_replace_plan(
    State(node): State<Arc<Node>>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Json<JsonValue>> {
    let body = body_json(body)?;
    only_fields(&body, &["old", "old_slot", "new"], "the body")?;
    let old = str_field(&body, "old")?.unwrap_or("").to_string();
    let old_slot = u64_field(&body, "old_slot")?.map(|s| s as usize);
    let new = str_field(&body, "new")?.map(std::path::PathBuf::from);
    blocking(&node, move |n| {
        // A new device the array holds already is refused before the plan is shown.
        if let Some(new) = &new {
            n.refuse_held(new)?;
        }
        Ok(Json(json!({"slot": n.replace_slot(&old, old_slot)?})))
    })
    .await
}

async fn admin_replace(
    State(node): State<Arc<Node>>,
    q: Result<Query<ProgressQuery>, QueryRejection>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Response> {
    let stream = q?.progress.unwrap_or(false);
    let body = body_json(body)?;
    only_fields(
        &body,
        &["slot", "new", "create_size", "preallocate", "force", "rate"],
        "the body",
    )?;
    let slot = u64_field(&body, "slot")?
        .ok_or_else(|| ApiError::bad_request("missing field \"slot\""))? as usize;
    let new = new_device(&body, "new")?;
    let rate = rate_field(&body)?;
    long_work(
        node,
        stream,
        Box::new(move |n, p| n.replace(slot, &new, rate, p)),
    )
    .await
}

async fn admin_online(
    State(node): State<Arc<Node>>,
    q: Result<Query<ProgressQuery>, QueryRejection>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Response> {
    let stream = q?.progress.unwrap_or(false);
    let body = body_json(body)?;
    only_fields(&body, &["device", "rate"], "the body")?;
    let path = std::path::PathBuf::from(
        str_field(&body, "device")?
            .ok_or_else(|| ApiError::bad_request("missing field \"device\""))?,
    );
    let rate = rate_field(&body)?;
    long_work(node, stream, Box::new(move |n, p| n.online(&path, rate, p))).await
}

async fn admin_add_spare(
    State(node): State<Arc<Node>>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Json<JsonValue>> {
    let body = body_json(body)?;
    only_fields(
        &body,
        &["device", "create_size", "preallocate", "force"],
        "the body",
    )?;
    let new = new_device(&body, "device")?;
    blocking(&node, move |n| Ok(Json(n.add_spare(&new)?))).await
}

/// A device to add, from a request body: its path in `field`, and `create_size`,
/// `preallocate` and `force`.
fn new_device(body: &JsonValue, field: &str) -> ApiResult<super::NewDevice> {
    Ok(super::NewDevice {
        path: std::path::PathBuf::from(
            str_field(body, field)?
                .ok_or_else(|| ApiError::bad_request(format!("missing field \"{field}\"")))?,
        ),
        create_size: u64_field(body, "create_size")?,
        preallocate: bool_field(body, "preallocate")?,
        force: bool_field(body, "force")?,
    })
}

async fn status_raw(State(node): State<Arc<Node>>) -> ApiResult<Json<JsonValue>> {
    blocking(&node, |n| {
        serde_json::to_value(n.s().engine.status())
            .map(Json)
            .map_err(|e| ApiError::from(anyhow::Error::from(e)))
    })
    .await
}

async fn admin_clean(
    State(node): State<Arc<Node>>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Json<JsonValue>> {
    let body = opt_body(body)?;
    only_fields(&body, &["max_passes"], "the body")?;
    let passes = u64_field(&body, "max_passes")?.map_or(64, |p| p as usize);
    blocking(&node, move |n| {
        let r = n.s().engine.clean(passes)?;
        Ok(Json(json!({
            "segments_cleaned": r.segments_cleaned,
            "segments_freed": r.segments_freed,
            "records_relocated": r.records_relocated,
            "bytes_relocated": r.bytes_relocated,
            "checkpoint_lsn": r.checkpoint_lsn,
            "paused": r.paused,
            "held_by_backup_horizon": r.held_by_backup_horizon,
        })))
    })
    .await
}

async fn admin_checkpoint(State(node): State<Arc<Node>>) -> ApiResult<Json<JsonValue>> {
    blocking(&node, |n| {
        let lsn = n.s().engine.checkpoint()?;
        Ok(Json(json!({"checkpoint_lsn": lsn})))
    })
    .await
}

/// Closes the array and opens it again (`Node::reopen`).
async fn admin_reopen(State(node): State<Arc<Node>>) -> ApiResult<Json<JsonValue>> {
    let n = node.clone();
    let r = tokio::task::spawn_blocking(move || n.reopen())
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the reopen's worker failed: {e}")))
        .map(Json)
        .map_err(ApiError::from);
    node.count_result(&r);
    r
}

async fn admin_backup(
    State(node): State<Arc<Node>>,
    q: Result<Query<ProgressQuery>, QueryRejection>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult<Response> {
    let stream = q?.progress.unwrap_or(false);
    let body = opt_body(body)?;
    only_fields(
        &body,
        &[
            "dir",
            "to",
            "incremental_from",
            "full_every",
            "max_chain_percent",
            "keep_chains",
            "rate",
        ],
        "the body",
    )?;
    let path = |k: &str| -> ApiResult<Option<std::path::PathBuf>> {
        Ok(str_field(&body, k)?.map(std::path::PathBuf::from))
    };
    let defaults = ectable_backup::AutoPolicy::default();
    let small = |k: &str, d: u32| -> ApiResult<u32> {
        Ok(u64_field(&body, k)?.map_or(d, |v| v.min(u32::MAX as u64) as u32))
    };
    let mut req = super::BackupRequest {
        auto: path("dir")?,
        to: path("to")?,
        incremental_from: path("incremental_from")?,
        policy: ectable_backup::AutoPolicy {
            full_every: small("full_every", defaults.full_every)?,
            max_chain_percent: small("max_chain_percent", defaults.max_chain_percent)?,
            keep_chains: small("keep_chains", defaults.keep_chains)?,
        },
        rate: rate_field(&body)?,
    };
    if req.auto.is_some() && req.to.is_some() {
        return Err(ApiError::bad_request("give \"dir\" or \"to\", not both"));
    }
    if req.auto.is_none() && req.to.is_none() {
        req.auto = node.default_backup_dir();
    }
    long_work(node, stream, Box::new(move |n, p| n.backup_with(&req, p))).await
}

/// Counts one answered request in `counts` (2xx, 4xx, 5xx).
pub fn count_in(counts: &[std::sync::atomic::AtomicU64; 3], class: u16) {
    let i = match class {
        2 => 0,
        4 => 1,
        _ => 2,
    };
    counts[i].fetch_add(1, Ordering::Relaxed);
}
