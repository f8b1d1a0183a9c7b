//! The OTLP/HTTP receiver (`docs/otel.md`): `POST /v1/traces` and
//! `POST /v1/metrics`, protobuf or JSON, plain or gzip, with an `ingest` key
//! as `Authorization: Bearer` (what `OTEL_EXPORTER_OTLP_HEADERS` sets).
//!
//! A request is decoded whole (a malformed one is refused with nothing
//! committed), then ingested as one batch exactly like a push: spooled as one
//! OTLP JSON line, mapped by `tollgate_ingest::otel`, bounded, deduplicated by
//! trace and span id (an exporter's retry adds nothing), committed, and
//! answered; what is derived from it follows the answer. Refused spans or
//! points come back as OTLP's partial success; every error body is a
//! `google.rpc.Status` in the request's encoding, as the specification asks.

use std::io::Read;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tollgate_ingest::otel::Export;
use tollgate_ingest::{Format, IngestReport};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{AppError, Result};
use crate::state::{AppState, ServerConfig};

pub fn router(config: &ServerConfig) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(traces))
        .routes(routes!(metrics))
        .layer(DefaultBodyLimit::max(config.max_ingest_bytes))
        .layer(axum::middleware::from_fn_with_state(
            config.max_ingest_bytes,
            crate::error::refuse_declared_oversize,
        ))
}

/// How the request (and so the answer) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// What an OTLP error body is: google.rpc.Status (code, message; no details).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// Receives an OTLP trace export: one `genai_spans` row per model, tool or agent span.
#[utoipa::path(post, path = "/v1/traces", tag = "otlp",
    request_body(description = "ExportTraceServiceRequest, protobuf or JSON, plain or gzip", content((String = "application/x-protobuf"), (String = "application/json"))),
    responses((status = 200, description = "ExportTraceServiceResponse, with partial_success when spans were refused"), (status = 400, description = "google.rpc.Status"), (status = 401), (status = 403), (status = 413), (status = 415), (status = 503)))]
async fn traces(
    auth: Result<Auth, AppError>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    receive(Signal::Traces, auth, &state, &headers, body).await
}

/// Receives an OTLP metrics export: the GenAI client histograms as `token_metrics` rows.
#[utoipa::path(post, path = "/v1/metrics", tag = "otlp",
    request_body(description = "ExportMetricsServiceRequest, protobuf or JSON, plain or gzip", content((String = "application/x-protobuf"), (String = "application/json"))),
    responses((status = 200, description = "ExportMetricsServiceResponse, with partial_success when data points were refused"), (status = 400, description = "google.rpc.Status"), (status = 401), (status = 403), (status = 413), (status = 415), (status = 503)))]
async fn metrics(
    auth: Result<Auth, AppError>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    receive(Signal::Metrics, auth, &state, &headers, body).await
}

/// Which OTLP export a route receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn decode(self, encoding: Encoding, body: &[u8]) -> Result<Export> {
        let what = match self {
            Signal::Traces => "trace",
            Signal::Metrics => "metrics",
        };
        let refused = |e: &dyn std::fmt::Display| {
            AppError::BadRequest(format!("not an OTLP {what} export: {e}"))
        };
        match (self, encoding) {
            (Signal::Traces, Encoding::Protobuf) => ExportTraceServiceRequest::decode(body)
                .map(Export::Traces)
                .map_err(|e| refused(&e)),
            (Signal::Traces, Encoding::Json) => serde_json::from_slice(body)
                .map(Export::Traces)
                .map_err(|e| refused(&e)),
            (Signal::Metrics, Encoding::Protobuf) => ExportMetricsServiceRequest::decode(body)
                .map(Export::Metrics)
                .map_err(|e| refused(&e)),
            (Signal::Metrics, Encoding::Json) => serde_json::from_slice(body)
                .map(Export::Metrics)
                .map_err(|e| refused(&e)),
        }
    }

    /// The export service's response: empty, or the partial success.
    fn answer(self, encoding: Encoding, rejected: i64, message: &str) -> Vec<u8> {
        let refused = rejected > 0;
        let message = message.to_owned();
        match (self, encoding) {
            (Signal::Traces, Encoding::Protobuf) => ExportTraceServiceResponse {
                partial_success: refused.then_some(ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: message,
                }),
            }
            .encode_to_vec(),
            (Signal::Metrics, Encoding::Protobuf) => ExportMetricsServiceResponse {
                partial_success: refused.then_some(ExportMetricsPartialSuccess {
                    rejected_data_points: rejected,
                    error_message: message,
                }),
            }
            .encode_to_vec(),
            (Signal::Traces, Encoding::Json) => json_answer("rejectedSpans", rejected, &message),
            (Signal::Metrics, Encoding::Json) => {
                json_answer("rejectedDataPoints", rejected, &message)
            }
        }
    }
}

/// One export received: checked, decoded, ingested, answered in its encoding.
async fn receive(
    signal: Signal,
    auth: Result<Auth, AppError>,
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let encoding = encoding(headers);
    let answer_in = encoding.as_ref().map_or(Encoding::Json, |e| *e);
    let answer = async {
        // The role before anything about the body, as every route decides it.
        let Auth(who) = auth?;
        who.require(super::ingest::PUSH, "send telemetry")?;
        let encoding = encoding?;
        let body = checked_body(state, headers, body)?;
        let export = signal.decode(encoding, &body)?;
        let (rejected, message) = ingest(state, export).await?;
        Ok(signal.answer(encoding, rejected, &message))
    }
    .await;
    respond(answer_in, answer)
}

fn encoding(headers: &HeaderMap) -> Result<Encoding> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = given.split(';').next().unwrap_or("").trim();
    match essence.to_ascii_lowercase().as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(AppError::UnsupportedMediaType(format!(
            "Content-Type {given:?}: OTLP/HTTP is application/x-protobuf or application/json"
        ))),
    }
}

/// The body, decompressed within the server's bound.
fn checked_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<u8>> {
    let limit = state.config.max_ingest_bytes;
    let body = body.map_err(|e| crate::error::body_refused(&e, e.status(), limit))?;
    let coding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match coding.as_deref() {
        None | Some("" | "identity") => Ok(body.to_vec()),
        Some("gzip") => gunzip(&body, limit),
        Some(other) => Err(AppError::UnsupportedMediaType(format!(
            "Content-Encoding {other:?}: gzip or none"
        ))),
    }
}

/// Decompresses at most `limit` bytes: a bomb is refused, not inflated.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let read = flate2::read::GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| AppError::BadRequest(format!("the body is not valid gzip: {e}")))?;
    if read > limit {
        return Err(AppError::PayloadTooLarge(format!(
            "the body decompresses to more than {limit} bytes; nothing was committed, send smaller exports"
        )));
    }
    Ok(out)
}

/// Ingests the export as one batch; the refused count and the first reasons.
async fn ingest(state: &AppState, export: Export) -> Result<(i64, String)> {
    if export.is_empty() {
        return Ok((0, String::new()));
    }
    let mut line = export
        .to_json()
        .map_err(|e| AppError::fault("OTLP export as JSON", e))?;
    let bound = state.config.ingest.limits.max_record_bytes;
    if line.len() > bound {
        return Err(AppError::PayloadTooLarge(format!(
            "the export is {} bytes as JSON, above the {bound} one batch line may hold; nothing was committed, send smaller exports (OTEL_BSP_MAX_EXPORT_BATCH_SIZE)",
            line.len()
        )));
    }
    line.push(b'\n');
    let report = super::ingest::ingest_decoded(state, Bytes::from(line), Format::Otlp).await?;
    let rejected = report.counts.quarantined;
    let message = match rejected {
        0 => String::new(),
        _ => refused_reasons(state, &report).await,
    };
    Ok((rejected, message))
}

/// The first few quarantine reasons of the batch, for the partial success.
async fn refused_reasons(state: &AppState, report: &IngestReport) -> String {
    match state.store.db.quarantined_lines(report.batch_id).await {
        Ok(rows) => {
            let reasons: Vec<String> = rows.into_iter().take(5).map(|r| r.reason).collect();
            format!(
                "{} refused (quarantined in batch {}): {}",
                report.counts.quarantined,
                report.batch_id,
                reasons.join("; ")
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "quarantine reasons not read for an OTLP answer");
            format!(
                "{} refused (quarantined in batch {})",
                report.counts.quarantined, report.batch_id
            )
        }
    }
}

/// OTLP JSON's answer: `{}` when all was accepted, else the partial success
/// (int64 as a string, as proto3 JSON writes it).
fn json_answer(count_field: &str, rejected: i64, message: &str) -> Vec<u8> {
    let body = match rejected {
        0 => serde_json::json!({}),
        _ => serde_json::json!({
            "partialSuccess": { count_field: rejected.to_string(), "errorMessage": message }
        }),
    };
    body.to_string().into_bytes()
}

fn respond(encoding: Encoding, answer: Result<Vec<u8>>) -> Response {
    let e = match answer {
        Ok(body) => return encoded(encoding, StatusCode::OK, body, None),
        Err(e) => e,
    };
    let answer = e.answer();
    let status = RpcStatus {
        code: grpc_code(answer.status),
        message: answer.message,
    };
    let body = match encoding {
        Encoding::Protobuf => status.encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": status.code, "message": status.message})
            .to_string()
            .into_bytes(),
    };
    e.attach(encoded(encoding, answer.status, body, answer.retry_after))
}

fn encoded(
    encoding: Encoding,
    status: StatusCode,
    body: Vec<u8>,
    retry_after: Option<u64>,
) -> Response {
    let content_type = match encoding {
        Encoding::Protobuf => "application/x-protobuf",
        Encoding::Json => "application/json",
    };
    let mut response = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The gRPC code a status stands for (google.rpc.Code).
fn grpc_code(status: StatusCode) -> i32 {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => 3,
        StatusCode::UNAUTHORIZED => 16,
        StatusCode::FORBIDDEN => 7,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => 8,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        StatusCode::REQUEST_TIMEOUT => 4,
        _ => 13,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_read_by_their_essence() {
        let check = |given: &str, expect: Option<Encoding>| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(given).unwrap());
            assert_eq!(encoding(&headers).ok(), expect, "{given}");
        };
        check("application/x-protobuf", Some(Encoding::Protobuf));
        check("application/json; charset=utf-8", Some(Encoding::Json));
        check("Application/JSON", Some(Encoding::Json));
        check("text/plain", None);
        check("application/jsonl", None);
    }

    #[test]
    fn a_gzip_bomb_is_refused_at_the_bound() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'{'; 1 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(matches!(
            gunzip(&bomb, 1000),
            Err(AppError::PayloadTooLarge(_))
        ));
        assert_eq!(gunzip(&bomb, 1 << 20).unwrap().len(), 1 << 20);
        assert!(matches!(
            gunzip(b"not gzip", 1000),
            Err(AppError::BadRequest(_))
        ));
    }
}
