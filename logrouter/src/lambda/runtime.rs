//! The Lambda Runtime API client and the invocation loop.
//!
//! The protocol is small (long-poll `next`, post a `response` or an
//! `error`, report an `init/error`), so it is spoken here over hyper's
//! HTTP/1 client rather than through a runtime crate: the deadline rules of
//! [`super::Budget`] and the flush before each response stay in our hands.
//! See <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use tracing::{debug, error, info, warn};

use super::{handle_batch, Budget, OnePerObject, SqsEvent};
use crate::config::Config;
use crate::queue::{ObjectHandler, RunStats};
use crate::telemetry::Exporter;

/// The environment variable Lambda sets to the Runtime API's `host:port`.
pub const RUNTIME_API_ENV: &str = "AWS_LAMBDA_RUNTIME_API";

#[derive(Debug, thiserror::Error)]
#[error("Lambda Runtime API at {host}: {message}")]
pub struct RuntimeError {
    pub host: String,
    pub message: String,
}

/// One invocation, as `next` returned it.
#[derive(Debug)]
pub struct Invocation {
    pub request_id: String,
    /// `Lambda-Runtime-Deadline-Ms`, when present and a number.
    pub deadline_ms: Option<u64>,
    pub body: Bytes,
}

/// A client of the Runtime API at `host:port`.
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    host: String,
    /// A path the API's paths are under: Lambda gives a bare `host:port`,
    /// cargo-lambda's emulator `http://host:port/.rt`.
    prefix: String,
}

impl RuntimeApi {
    /// `address`: `host:port`, optionally with `http://` before it and a
    /// path after it.
    pub fn new(address: &str) -> Self {
        let bare = address.strip_prefix("http://").unwrap_or(address);
        let (host, prefix) = match bare.find('/') {
            Some(i) => (&bare[..i], bare[i..].trim_end_matches('/')),
            None => (bare, ""),
        };
        Self {
            host: host.to_owned(),
            prefix: prefix.to_owned(),
        }
    }

    /// The API Lambda gives this process, from `AWS_LAMBDA_RUNTIME_API`.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(RUNTIME_API_ENV) {
            Ok(address) if !address.is_empty() => Ok(Self::new(&address)),
            _ => Err(format!(
                "{RUNTIME_API_ENV} is not set: Lambda mode runs inside Lambda (or under an emulator such as `cargo lambda watch`, which sets it)"
            )),
        }
    }

    fn error(&self, message: impl Into<String>) -> RuntimeError {
        RuntimeError {
            host: self.host.clone(),
            message: message.into(),
        }
    }

    /// One request on a connection of its own (the API is on the same
    /// host; a connection costs nothing next to an invocation).
    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), RuntimeError> {
        let stream = tokio::net::TcpStream::connect(&self.host)
            .await
            .map_err(|e| self.error(format!("cannot connect: {e}")))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| self.error(format!("{path}: {e}")))?;
        let connection = tokio::spawn(conn);
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(hyper::header::HOST, &self.host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.error(format!("{path}: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.error(format!("{path}: {e}")))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| self.error(format!("{path}: reading the answer: {e}")))?
            .to_bytes();
        connection.abort();
        Ok((parts.status, parts.headers, body))
    }

    /// Waits for the next invocation.
    pub async fn next(&self) -> Result<Invocation, RuntimeError> {
        let path = "/2018-06-01/runtime/invocation/next";
        let (status, headers, body) = self.call(Method::GET, path, &[], Vec::new()).await?;
        if status != StatusCode::OK {
            return Err(self.error(format!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let request_id = header("lambda-runtime-aws-request-id")
            .ok_or_else(|| self.error(format!("{path}: no Lambda-Runtime-Aws-Request-Id")))?
            .to_owned();
        Ok(Invocation {
            request_id,
            deadline_ms: header("lambda-runtime-deadline-ms").and_then(|v| v.parse().ok()),
            body,
        })
    }

    /// Answers an invocation.
    pub async fn respond(&self, request_id: &str, body: Vec<u8>) -> Result<(), RuntimeError> {
        let path = format!("/2018-06-01/runtime/invocation/{request_id}/response");
        self.expect_accepted(&path, &[("content-type", "application/json")], body)
            .await
    }

    /// Fails an invocation as a whole (the event source retries all of it).
    pub async fn fail(
        &self,
        request_id: &str,
        error_type: &str,
        message: &str,
    ) -> Result<(), RuntimeError> {
        let path = format!("/2018-06-01/runtime/invocation/{request_id}/error");
        self.post_error(&path, error_type, message).await
    }

    /// Reports a failed start-up (bad configuration): Lambda logs it and
    /// fails the invocation that started the sandbox.
    pub async fn init_error(&self, error_type: &str, message: &str) -> Result<(), RuntimeError> {
        self.post_error("/2018-06-01/runtime/init/error", error_type, message)
            .await
    }

    async fn post_error(
        &self,
        path: &str,
        error_type: &str,
        message: &str,
    ) -> Result<(), RuntimeError> {
        let body = serde_json::json!({"errorType": error_type, "errorMessage": message});
        self.expect_accepted(
            path,
            &[
                ("content-type", "application/json"),
                ("lambda-runtime-function-error-type", error_type),
            ],
            body.to_string().into_bytes(),
        )
        .await
    }

    async fn expect_accepted(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(), RuntimeError> {
        let (status, _, answer) = self.call(Method::POST, path, headers, body).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(self.error(format!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&answer)
            )))
        }
    }

    /// Registers an internal extension that subscribes to no event. Lambda
    /// sends a runtime SIGTERM before it shuts a sandbox down only when an
    /// extension is registered; with it, the process flushes its metrics
    /// then. The extension waits on its `next` for good, as it must for
    /// the sandbox's start to complete. Must be called before the first
    /// [`RuntimeApi::next`].
    pub async fn register_shutdown_extension(&self) -> Result<(), RuntimeError> {
        let path = "/2020-01-01/extension/register";
        let (status, headers, body) = self
            .call(
                Method::POST,
                path,
                &[
                    ("lambda-extension-name", "logrouter-shutdown"),
                    ("content-type", "application/json"),
                ],
                br#"{"events":[]}"#.to_vec(),
            )
            .await?;
        if !status.is_success() {
            return Err(self.error(format!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let id = headers
            .get("lambda-extension-identifier")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.error(format!("{path}: no Lambda-Extension-Identifier")))?
            .to_owned();
        let api = self.clone();
        tokio::spawn(async move {
            loop {
                let r = api
                    .call(
                        Method::GET,
                        "/2020-01-01/extension/event/next",
                        &[("lambda-extension-identifier", &id)],
                        Vec::new(),
                    )
                    .await;
                if let Err(e) = r {
                    debug!(error = %e, "the shutdown extension's wait ended");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
        Ok(())
    }
}

/// Serves invocations until `shutdown` resolves (the sandbox's SIGTERM):
/// each one an SQS event through [`handle_batch`] with `handler` (one
/// object at a time per object, [`OnePerObject`]), answered with its batch
/// response. Metrics are flushed before every answer and at shutdown.
pub async fn serve<H: ObjectHandler>(
    api: RuntimeApi,
    handler: Arc<H>,
    config: &Config,
    exporter: Option<Exporter>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let handler = Arc::new(OnePerObject::new(handler));
    let stats = Arc::new(RunStats::default());
    let flush = || {
        if let Some(e) = &exporter {
            e.flush();
        }
    };
    let invocations = async {
        info!(
            startup_ms = crate::process::since_start().as_millis() as u64,
            "waiting for invocations"
        );
        let mut failures = 0u32;
        loop {
            let invocation = match api.next().await {
                Ok(i) => {
                    failures = 0;
                    i
                }
                // The API is local and Lambda's own: a few tries, then the
                // sandbox is broken and the process exits.
                Err(e) if failures < 5 => {
                    failures += 1;
                    warn!(error = %e, "waiting for the next invocation failed; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(failures))).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let id = invocation.request_id.clone();
            let budget = Budget::from_deadline_ms(invocation.deadline_ms, &config.lambda);
            let answer = match serde_json::from_slice::<SqsEvent>(&invocation.body) {
                Ok(event) => {
                    debug!(request_id = %id, messages = event.records.len(), "invocation");
                    let response = handle_batch(
                        &handler,
                        event,
                        budget,
                        config.queue.max_objects_in_flight,
                        &stats,
                    )
                    .await;
                    flush();
                    api.respond(
                        &id,
                        serde_json::to_vec(&response).expect("a batch response serialises"),
                    )
                    .await
                }
                Err(e) => {
                    let message = format!(
                        "the invocation is not an SQS event ({e}): invoke this function through an SQS event source mapping, whose events are {{\"Records\": [{{\"messageId\": …, \"body\": …}}]}}"
                    );
                    error!(request_id = %id, %message);
                    flush();
                    api.fail(&id, "InvalidEvent", &message).await
                }
            };
            if let Err(e) = answer {
                // The invocation times out on Lambda's side and is retried.
                error!(request_id = %id, error = %e, "answering the invocation failed");
            }
        }
    };
    tokio::select! {
        r = invocations => r,
        () = shutdown => {
            flush();
            info!(
                received = RunStats::get(&stats.messages_received),
                done = RunStats::get(&stats.messages_deleted),
                failed = RunStats::get(&stats.messages_failed),
                unknown = RunStats::get(&stats.messages_unknown),
                "shutting down: metrics flushed"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RuntimeApi;

    #[test]
    fn the_address_is_lambdas_or_an_emulators() {
        let a = RuntimeApi::new("127.0.0.1:9001");
        assert_eq!((a.host.as_str(), a.prefix.as_str()), ("127.0.0.1:9001", ""));
        let a = RuntimeApi::new("http://127.0.0.1:9000/.rt");
        assert_eq!(
            (a.host.as_str(), a.prefix.as_str()),
            ("127.0.0.1:9000", "/.rt")
        );
        let a = RuntimeApi::new("localhost:9000/.rt/");
        assert_eq!(
            (a.host.as_str(), a.prefix.as_str()),
            ("localhost:9000", "/.rt")
        );
    }
}
