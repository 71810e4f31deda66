//! A small OTLP/gRPC receiver for the tests: the logs and traces services of the OpenTelemetry
//! collector protocol (`opentelemetry-proto`'s generated messages and tonic services), on a free
//! loopback port, keeping every export request it gets. Envoy's OpenTelemetry access logger and
//! tracer send to it through the `otel_collector` cluster of the shipped configs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use tokio::sync::oneshot;

/// One log record as received: its body and attributes (values as text), with its resource's
/// attributes.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub body: String,
    pub attributes: HashMap<String, Value>,
    pub resource: HashMap<String, Value>,
}

/// One span as received.
#[derive(Debug, Clone)]
pub struct Span {
    pub name: String,
    pub attributes: HashMap<String, Value>,
    pub resource: HashMap<String, Value>,
}

/// An attribute's value, as the sender typed it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Arrays, maps and bytes, written out.
    Other(String),
}

impl Value {
    /// The value as text (numbers written out).
    pub fn text(&self) -> String {
        match self {
            Value::String(s) | Value::Other(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => d.to_string(),
            Value::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Default)]
struct Received {
    logs: Vec<ExportLogsServiceRequest>,
    traces: Vec<ExportTraceServiceRequest>,
}

#[derive(Clone, Default)]
struct Store(Arc<Mutex<Received>>);

#[tonic::async_trait]
impl LogsService for Store {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().logs.push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Store {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().traces.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The receiver; it stops when dropped.
pub struct OtlpReceiver {
    pub addr: SocketAddr,
    store: Store,
    _stop: oneshot::Sender<()>,
}

impl OtlpReceiver {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let addr = listener.local_addr().expect("OTLP receiver address");
        let store = Store::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let router = tonic::transport::Server::builder()
            .add_service(LogsServiceServer::new(store.clone()))
            .add_service(TraceServiceServer::new(store.clone()));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            addr,
            store,
            _stop: stop,
        }
    }

    /// Every log record received so far.
    pub fn logs(&self) -> Vec<LogRecord> {
        let received = self.store.0.lock().unwrap();
        let mut records = Vec::new();
        for request in &received.logs {
            for resource_logs in &request.resource_logs {
                let resource = resource_logs
                    .resource
                    .as_ref()
                    .map(|r| attributes(&r.attributes))
                    .unwrap_or_default();
                for scope in &resource_logs.scope_logs {
                    for record in &scope.log_records {
                        records.push(LogRecord {
                            body: record
                                .body
                                .as_ref()
                                .map(|b| value(b).text())
                                .unwrap_or_default(),
                            attributes: attributes(&record.attributes),
                            resource: resource.clone(),
                        });
                    }
                }
            }
        }
        records
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        let received = self.store.0.lock().unwrap();
        let mut spans = Vec::new();
        for request in &received.traces {
            for resource_spans in &request.resource_spans {
                let resource = resource_spans
                    .resource
                    .as_ref()
                    .map(|r| attributes(&r.attributes))
                    .unwrap_or_default();
                for scope in &resource_spans.scope_spans {
                    for span in &scope.spans {
                        spans.push(Span {
                            name: span.name.clone(),
                            attributes: attributes(&span.attributes),
                            resource: resource.clone(),
                        });
                    }
                }
            }
        }
        spans
    }

    /// Every byte received, as encoded on the wire (strings appear in it as they were sent):
    /// for checking that something never was.
    pub fn raw(&self) -> Vec<u8> {
        let received = self.store.0.lock().unwrap();
        let mut bytes = Vec::new();
        for request in &received.logs {
            bytes.extend(request.encode_to_vec());
        }
        for request in &received.traces {
            bytes.extend(request.encode_to_vec());
        }
        bytes
    }

    /// Polls until `found` picks something out of what was received, and returns it. Fails
    /// after `timeout` with what did arrive (a deadline for waiting, not a claim about speed).
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        found: impl Fn(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = found(self) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "the OTLP receiver got no {what} within {timeout:?}; logs: {:#?}\nspans: {:#?}",
                self.logs(),
                self.spans()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, Value> {
    list.iter()
        .map(|kv| {
            let v = kv.value.as_ref().map_or(Value::Other(String::new()), value);
            (kv.key.clone(), v)
        })
        .collect()
}

fn value(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::IntValue(i)) => Value::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::Double(*d),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        other => Value::Other(format!("{other:?}")),
    }
}
