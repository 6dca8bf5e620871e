//! What the integration tests share: a store holding a small catalogue as the services loop
//! writes it, a server on a free loopback port over it, and a DNS client over raw UDP and TCP
//! with hickory-proto's messages.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use nomos_api::service::ServiceRegistration;
use nomos_dns::{DnsConfig, DnsServer};
use nomos_store::{keys, EmbeddedStore, Store, Txn, TxnOp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A registration as the services loop writes it.
pub fn registration(
    ns: &str,
    service: &str,
    id: &str,
    (node, address, port): (&str, &str, u16),
    tags: &[&str],
    healthy: bool,
) -> ServiceRegistration {
    ServiceRegistration {
        id: id.into(),
        service_name: service.into(),
        namespace: ns.into(),
        node: node.into(),
        datacenter: "dc1".into(),
        address: address.into(),
        port,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        healthy,
        ..Default::default()
    }
}

/// `backend` in `default` (two healthy instances with tags v1/primary and v2, one unhealthy),
/// `backend` in `prod` (one), `web` in `default` (unhealthy only).
pub fn fixtures() -> Vec<ServiceRegistration> {
    vec![
        registration(
            "default",
            "backend",
            "b1",
            ("n1", "10.0.0.1", 8080),
            &["v1", "primary"],
            true,
        ),
        registration(
            "default",
            "backend",
            "b2",
            ("n2", "10.0.0.2", 8081),
            &["v2"],
            true,
        ),
        registration(
            "default",
            "backend",
            "b3",
            ("n3", "10.0.0.3", 8082),
            &["v1"],
            false,
        ),
        registration("prod", "backend", "p1", ("n4", "10.1.0.1", 9090), &[], true),
        registration("default", "web", "w1", ("n1", "10.0.0.1", 80), &[], false),
    ]
}

/// Writes registrations and touches the index in one transaction, as the services loop does.
pub async fn register(store: &dyn Store, regs: &[ServiceRegistration]) {
    let mut ops: Vec<TxnOp> = regs
        .iter()
        .map(|r| {
            let key = keys::service(&r.namespace, &r.service_name, &r.id);
            TxnOp::put(key, serde_json::to_vec(r).unwrap())
        })
        .collect();
    ops.push(TxnOp::put(keys::SERVICES_INDEX, ""));
    store.txn(Txn::new().and_then(ops)).await.expect("register");
}

/// A running server; dropping it stops the server.
pub struct Running {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), nomos_dns::DnsError>>>,
}

impl Running {
    /// Stops the server and waits for `serve` to return.
    pub async fn stop(mut self) -> Result<(), nomos_dns::DnsError> {
        let _ = self.stop.take().map(|s| s.send(()));
        self.task.take().unwrap().await.expect("serve task")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A server on 127.0.0.1 port 0 over an in-memory store holding [`fixtures`], with `tweak`
/// applied to its configuration; waits until the catalogue is loaded.
pub async fn start(tweak: impl FnOnce(&mut DnsConfig)) -> Running {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    register(&*store, &fixtures()).await;
    let mut config = DnsConfig::new("127.0.0.1:0".parse().unwrap());
    tweak(&mut config);
    let server = DnsServer::bind(config).await.expect("bind");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(store.clone(), async move {
        let _ = stopped.await;
    }));
    let running = Running {
        addr,
        store,
        stop: Some(stop),
        task: Some(task),
    };
    // Until the first load the server answers SERVFAIL.
    let loaded = eventually(|| async {
        udp(running.addr, "backend.service.nomos.", RecordType::A)
            .await
            .metadata
            .response_code
            == hickory_proto::op::ResponseCode::NoError
    })
    .await;
    assert!(loaded, "the catalogue was never loaded");
    running
}

/// Whether `check` holds within 10 s, polling.
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A query message, with EDNS offering `edns` bytes if given.
pub fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::new(0xbeef, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.edns = Some(e);
    }
    m.to_vec().unwrap()
}

/// Sends `bytes` over UDP and returns the raw reply, or `None` after 2 s.
pub async fn udp_raw(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(bytes, addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let got = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await;
    let (len, _) = got.ok()?.ok()?;
    Some(buf[..len].to_vec())
}

/// Asks over UDP, without EDNS.
pub async fn udp(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let reply = udp_raw(addr, &query(name, qtype, None))
        .await
        .expect("a UDP reply");
    Message::from_vec(&reply).expect("the reply decodes")
}

/// Sends one length-prefixed message on `stream` and reads the reply.
pub async fn tcp_exchange(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<Message> {
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    Message::from_vec(&buf).map_err(std::io::Error::other)
}

/// Asks over a new TCP connection.
pub async fn tcp(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    tcp_exchange(&mut stream, &query(name, qtype, None))
        .await
        .expect("a TCP reply")
}

/// `<owner> <data>` of each record, for comparing.
pub fn texts(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    out.sort();
    out
}
