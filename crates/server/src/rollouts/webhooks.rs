//! Webhook deliveries from the outbox: signed, retried with backoff, never to private places.
//!
//! Each rollout transition queues one outbox row per subscribed webhook in the transition's
//! own transaction (see `store/rollouts.rs`), so an announcement is never lost to a crash and
//! never made for a transition that did not commit. The leader delivers due rows here:
//!
//! - **Signed.** `X-Sluice-Timestamp` carries the attempt's time in Unix milliseconds and
//!   `X-Sluice-Signature` is `sha256=` and the hex HMAC-SHA256, keyed by the webhook's secret,
//!   of `"{timestamp}.{body}"`, so a receiver can refuse old or altered deliveries.
//!   `X-Sluice-Event` names the event and `X-Sluice-Delivery` is stable across retries
//!   (`rollout.seq`), for receivers to drop duplicates.
//! - **Retried.** Anything but a 2xx is retried after 5 s, 10 s, 20 s, … (doubling, at most an
//!   hour, jittered into the upper half) up to [`MAX_ATTEMPTS`] attempts, then given up and
//!   recorded with its last error. Redirects are not followed.
//! - **Only public destinations.** The host is resolved through a [`Resolver`] and refused if
//!   any address is loopback, private, link-local, unique-local, unspecified, multicast,
//!   CGNAT, reserved or documentation space, or such an address mapped into IPv6, unless the
//!   host or the address is on the allow-list (`--webhook-allow`). The request then connects
//!   to exactly the addresses vetted, so a second DNS answer cannot rebind it elsewhere.
//!   A refused destination is given up at once: retrying cannot make it public.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::Url;
use serde::Serialize;
use sha2::Sha256;

use crate::store::{Delivery, DeliveryOutcome, Store, StoreError};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-sluice-signature";
/// The header carrying the signed timestamp, in Unix milliseconds.
pub const TIMESTAMP_HEADER: &str = "x-sluice-timestamp";
/// The header naming the event, such as `rollout.rollback`.
pub const EVENT_HEADER: &str = "x-sluice-event";
/// The header identifying the delivery across retries: `{rollout}.{seq}`.
pub const DELIVERY_HEADER: &str = "x-sluice-delivery";
/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 10;
/// The wait after the first failure; it doubles after each.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);
/// The longest wait between attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(3600);
/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Deliveries attempted per pass.
const BATCH: u32 = 100;

/// Resolves host names to addresses. Injected so that refusals are tested without touching
/// the network.
#[async_trait::async_trait]
pub trait Resolver: Send + Sync + fmt::Debug {
    /// Every address `host` resolves to.
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>>;
}

/// The system's resolver, through `tokio::net::lookup_host`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait::async_trait]
impl Resolver for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, port))
            .await?
            .map(|address| address.ip())
            .collect())
    }
}

/// Destinations allowed even though they are not public: host names (exact, any case) and
/// IP addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    hosts: Vec<String>,
    addresses: Vec<IpAddr>,
}

impl AllowList {
    /// An allow-list from entries such as `hooks.internal` or `10.0.0.5`.
    pub fn new(entries: &[String]) -> AllowList {
        let mut list = AllowList::default();
        for entry in entries {
            let entry = entry.trim().trim_start_matches('[').trim_end_matches(']');
            if entry.is_empty() {
                continue;
            }
            match entry.parse::<IpAddr>() {
                Ok(address) => list.addresses.push(address),
                Err(_) => list.hosts.push(entry.to_ascii_lowercase()),
            }
        }
        list
    }

    /// Whether `address` is on the list.
    pub fn allows(&self, address: IpAddr) -> bool {
        self.allows_address(address) || self.allows_host(&address.to_string())
    }

    fn allows_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    fn allows_address(&self, address: IpAddr) -> bool {
        self.addresses.contains(&address)
    }
}

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The URL cannot be a webhook.
    #[error("{0}")]
    BadUrl(String),
    /// The host did not resolve.
    #[error("cannot resolve `{host}`: {message}")]
    Unresolved {
        /// The host.
        host: String,
        /// Why.
        message: String,
    },
    /// The host resolves to an address that is not public.
    #[error(
        "`{host}` resolves to {address}, which is not a public address; allow it with --webhook-allow"
    )]
    NotPublic {
        /// The host.
        host: String,
        /// The address.
        address: IpAddr,
    },
}

/// Checks a webhook URL's form: `http` or `https`, a host, no credentials, at most
/// [`MAX_URL_LEN`] bytes. Where it points is checked at each delivery.
pub fn check_url(text: &str) -> Result<Url, Refusal> {
    if text.len() > MAX_URL_LEN {
        return Err(Refusal::BadUrl(format!(
            "url: longer than {MAX_URL_LEN} bytes"
        )));
    }
    let url = Url::parse(text).map_err(|e| Refusal::BadUrl(format!("url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::BadUrl(format!(
            "url: the scheme must be http or https, not `{}`",
            url.scheme()
        )));
    }
    if url.host().is_none() {
        return Err(Refusal::BadUrl("url: has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::BadUrl(
            "url: must not carry credentials; sign with the webhook secret instead".into(),
        ));
    }
    Ok(url)
}

/// Whether `address` is publicly routable: not loopback, private, link-local, unique-local,
/// unspecified, multicast, broadcast, CGNAT, reserved, benchmarking or documentation space,
/// including such IPv4 addresses mapped into IPv6 (`::ffff:a.b.c.d`, `64:ff9b::a.b.c.d`).
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    let refused = a == 0 // "this network", including the unspecified address
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224; // multicast, reserved and broadcast
    !refused
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    if let Some(v4) = address.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = address.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        return is_public_v4(v4);
    }
    let first = segments[0];
    let refused = address.is_unspecified()
        || address.is_loopback()
        || first & 0xff00 == 0xff00 // multicast
        || first & 0xffc0 == 0xfe80 // link-local
        || first & 0xffc0 == 0xfec0 // site-local (deprecated)
        || first & 0xfe00 == 0xfc00 // unique-local
        || (first == 0x2001 && segments[1] == 0x0db8) // documentation
        || segments[..5] == [0, 0, 0, 0, 0]; // IPv4-compatible and other reserved ::/80
    !refused
}

/// Where a delivery to `url` may connect: the vetted addresses, or `None` to let the client
/// resolve an allow-listed host itself.
pub async fn vet(
    url: &Url,
    resolver: &dyn Resolver,
    allow: &AllowList,
) -> Result<Option<Vec<SocketAddr>>, Refusal> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Refusal::BadUrl("url: has no port".into()))?;
    let Some(host) = url.host_str() else {
        return Err(Refusal::BadUrl("url: has no host".into()));
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(address) = bare.parse::<IpAddr>() {
        return vet_literal(address, allow);
    }
    let host = host.to_ascii_lowercase();
    if allow.allows_host(&host) {
        return Ok(None);
    }
    let addresses = resolver
        .resolve(&host, port)
        .await
        .map_err(|e| Refusal::Unresolved {
            host: host.clone(),
            message: e.to_string(),
        })?;
    if addresses.is_empty() {
        return Err(Refusal::Unresolved {
            host,
            message: "no addresses".into(),
        });
    }
    if let Some(&address) = addresses
        .iter()
        .find(|&&a| !is_public(a) && !allow.allows_address(a))
    {
        return Err(Refusal::NotPublic { host, address });
    }
    Ok(Some(
        addresses
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect(),
    ))
}

fn vet_literal(address: IpAddr, allow: &AllowList) -> Result<Option<Vec<SocketAddr>>, Refusal> {
    if is_public(address) || allow.allows(address) {
        // A literal address needs no resolution, so nothing can rebind it.
        Ok(None)
    } else {
        Err(Refusal::NotPublic {
            host: address.to_string(),
            address,
        })
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `"{timestamp_ms}.{body}"` under `secret`.
pub fn signature(secret: &str, timestamp_ms: i64, body: &str) -> String {
    let mac = signed(secret, timestamp_ms, body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` at `timestamp_ms` under `secret`, compared in
/// constant time. For receivers, and tests.
pub fn verify(secret: &str, timestamp_ms: i64, body: &str, header: &str) -> bool {
    let Some(hex_digest) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(digest) = hex::decode(hex_digest) else {
        return false;
    };
    signed(secret, timestamp_ms, body)
        .verify_slice(&digest)
        .is_ok()
}

fn signed(secret: &str, timestamp_ms: i64, body: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this never fails; an empty key is still a key.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac
}

/// The wait after `failures` failed attempts (at least 1), before jitter.
pub fn backoff(failures: i64) -> Duration {
    let doublings = u32::try_from(failures.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    FIRST_RETRY
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(MAX_RETRY)
}

/// `wait` jittered into `[wait/2, wait]`, in milliseconds.
fn jittered_ms(wait: Duration) -> i64 {
    let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
    let half = ms / 2;
    let extra = rand::random::<u64>() % (ms - half + 1);
    i64::try_from(half + extra).unwrap_or(i64::MAX)
}

/// Delivers webhooks: the resolver and allow-list that decide where it may connect.
#[derive(Debug, Clone)]
pub struct Deliverer {
    resolver: Arc<dyn Resolver>,
    allow: AllowList,
}

impl Deliverer {
    /// A deliverer with this resolver and allow-list.
    pub fn new(resolver: Arc<dyn Resolver>, allow: AllowList) -> Deliverer {
        Deliverer { resolver, allow }
    }

    /// The system resolver with the allow-list from `--webhook-allow`.
    pub fn system(allow: &[String]) -> Deliverer {
        Deliverer::new(Arc::new(SystemResolver), AllowList::new(allow))
    }

    /// Vets `url` as this deliverer would before connecting.
    pub async fn vet(&self, url: &Url) -> Result<Option<Vec<SocketAddr>>, Refusal> {
        vet(url, self.resolver.as_ref(), &self.allow).await
    }
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// Answered 2xx.
    pub delivered: usize,
    /// Failed, and will be tried again.
    pub retried: usize,
    /// Failed for good (refused, or out of attempts).
    pub gave_up: usize,
}

/// Attempts every delivery due at `now_ms` once, recording each outcome.
pub async fn deliver_due(
    store: &dyn Store,
    deliverer: &Deliverer,
    now_ms: i64,
) -> Result<DeliveryReport, StoreError> {
    let mut report = DeliveryReport::default();
    for delivery in store.due_deliveries(now_ms, BATCH).await? {
        let outcome = match attempt(deliverer, &delivery, now_ms).await {
            Ok(()) => {
                report.delivered += 1;
                DeliveryOutcome::Delivered { at_ms: now_ms }
            }
            Err(Failure::Permanent(error)) => {
                report.gave_up += 1;
                tracing::warn!(
                    delivery = delivery.id,
                    url = delivery.url,
                    error,
                    "webhook refused"
                );
                DeliveryOutcome::GaveUp {
                    at_ms: now_ms,
                    error,
                }
            }
            Err(Failure::Transient(error)) => {
                let failures = delivery.attempts.saturating_add(1);
                tracing::warn!(
                    delivery = delivery.id,
                    url = delivery.url,
                    failures,
                    error,
                    "webhook failed"
                );
                if failures >= MAX_ATTEMPTS {
                    report.gave_up += 1;
                    DeliveryOutcome::GaveUp {
                        at_ms: now_ms,
                        error,
                    }
                } else {
                    report.retried += 1;
                    DeliveryOutcome::Retry {
                        next_attempt_ms: now_ms.saturating_add(jittered_ms(backoff(failures))),
                        error,
                    }
                }
            }
        };
        store.record_delivery(delivery.id, &outcome).await?;
    }
    Ok(report)
}

enum Failure {
    Permanent(String),
    Transient(String),
}

async fn attempt(deliverer: &Deliverer, delivery: &Delivery, now_ms: i64) -> Result<(), Failure> {
    let url = check_url(&delivery.url).map_err(|e| Failure::Permanent(e.to_string()))?;
    let pinned = deliverer.vet(&url).await.map_err(|e| match e {
        Refusal::Unresolved { .. } => Failure::Transient(e.to_string()),
        other => Failure::Permanent(other.to_string()),
    })?;
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(ATTEMPT_TIMEOUT);
    if let (Some(addresses), Some(host)) = (&pinned, url.host_str()) {
        builder = builder.resolve_to_addrs(host, addresses);
    }
    let client = builder
        .build()
        .map_err(|e| Failure::Transient(format!("cannot build the HTTP client: {e}")))?;
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(TIMESTAMP_HEADER, now_ms.to_string())
        .header(
            SIGNATURE_HEADER,
            signature(&delivery.secret, now_ms, &delivery.payload),
        )
        .header(EVENT_HEADER, &delivery.event)
        .header(
            DELIVERY_HEADER,
            format!("{}.{}", delivery.rollout_id, delivery.seq),
        )
        .body(delivery.payload.clone())
        .send()
        .await
        .map_err(|e| Failure::Transient(format!("request failed: {e}")))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(Failure::Transient(format!("answered HTTP {status}")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Answers from a table, and fails for anything else. Never touches the network.
    #[derive(Debug, Default)]
    struct FakeResolver(HashMap<String, Vec<IpAddr>>);

    #[async_trait::async_trait]
    impl Resolver for FakeResolver {
        async fn resolve(&self, host: &str, _port: u16) -> std::io::Result<Vec<IpAddr>> {
            self.0
                .get(host)
                .cloned()
                .ok_or_else(|| std::io::Error::other("unknown host"))
        }
    }

    fn resolver(entries: &[(&str, &[&str])]) -> FakeResolver {
        FakeResolver(
            entries
                .iter()
                .map(|(host, addresses)| {
                    (
                        (*host).to_owned(),
                        addresses.iter().map(|a| a.parse().unwrap()).collect(),
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
        ] {
            assert!(!is_public(refused.parse().unwrap()), "{refused} passed");
        }
        for allowed in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(allowed.parse().unwrap()), "{allowed} refused");
        }
    }

    #[tokio::test]
    async fn a_host_resolving_anywhere_private_is_refused_unless_allowed() {
        let fake = resolver(&[
            ("hooks.example.com", &["93.184.216.34"]),
            ("sneaky.example.com", &["93.184.216.34", "10.0.0.7"]),
            ("metadata.example.com", &["169.254.169.254"]),
            ("mapped.example.com", &["::ffff:127.0.0.1"]),
            ("internal.corp", &["10.1.1.1"]),
        ]);
        let none = AllowList::default();
        let url = |text: &str| check_url(text).unwrap();

        let vetted = vet(&url("https://hooks.example.com/x"), &fake, &none)
            .await
            .unwrap();
        assert_eq!(vetted, Some(vec!["93.184.216.34:443".parse().unwrap()]));

        for refused in [
            "https://sneaky.example.com/",
            "http://metadata.example.com/latest",
            "http://mapped.example.com/",
            "http://internal.corp/",
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://[::ffff:192.168.0.1]/",
        ] {
            let error = vet(&url(refused), &fake, &none).await.unwrap_err();
            assert!(
                matches!(error, Refusal::NotPublic { .. }),
                "{refused}: {error}"
            );
        }
        assert!(matches!(
            vet(&url("https://nowhere.example/"), &fake, &none).await,
            Err(Refusal::Unresolved { .. })
        ));

        let allow = AllowList::new(&[
            "internal.corp".into(),
            "127.0.0.1".into(),
            "10.0.0.7".into(),
        ]);
        assert_eq!(
            vet(&url("http://internal.corp/"), &fake, &allow).await,
            Ok(None)
        );
        assert_eq!(
            vet(&url("http://127.0.0.1:8080/"), &fake, &allow).await,
            Ok(None)
        );
        // An allowed address among public ones passes, pinned to those addresses.
        let pinned = vet(&url("https://sneaky.example.com/"), &fake, &allow)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pinned.len(), 2);
        assert!(
            vet(&url("http://metadata.example.com/"), &fake, &allow)
                .await
                .is_err()
        );
    }

    #[test]
    fn urls_are_checked_for_form() {
        assert!(check_url("https://hooks.example.com/sluice").is_ok());
        for bad in [
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signatures_verify_and_detect_tampering() {
        let header = signature("s3cret", 1_700_000_000_000, "{\"a\":1}");
        assert!(header.starts_with("sha256="));
        assert_eq!(header.len(), "sha256=".len() + 64);
        assert!(verify("s3cret", 1_700_000_000_000, "{\"a\":1}", &header));
        assert!(!verify("s3cret", 1_700_000_000_001, "{\"a\":1}", &header));
        assert!(!verify("other", 1_700_000_000_000, "{\"a\":1}", &header));
        assert!(!verify("s3cret", 1_700_000_000_000, "{\"a\":2}", &header));
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(30), MAX_RETRY);
        for _ in 0..100 {
            let ms = jittered_ms(Duration::from_secs(10));
            assert!((5_000..=10_000).contains(&ms), "{ms}");
        }
    }
}
