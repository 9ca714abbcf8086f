//! Downloading a file from a URL someone else gave us (the relay forwarding WhatsApp or Twilio
//! media), safely: http(s) only, never through a proxy from the environment, every hop's
//! addresses checked against the IANA special-purpose ranges (and the connection pinned to
//! the checked address, so DNS cannot change its mind), at most a few redirects, one time
//! limit for the whole download (lookups, redirects and body), and a size cap enforced while
//! streaming.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::Url;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 3;
/// The longest URL accepted (browsers and CDNs stop at about this much too).
pub const MAX_URL_BYTES: usize = 4096;

/// Why a download was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the URL is not an http(s) URL with a host (of at most 4096 bytes)")]
    BadUrl,
    #[error("the URL points to a private, loopback or otherwise internal address")]
    PrivateAddress,
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the download took longer than allowed")]
    Timeout,
    #[error("the server answered {0}")]
    Status(u16),
    #[error("too many redirects")]
    TooManyRedirects,
    #[error("the host could not be reached")]
    Unreachable,
}

/// A downloaded file.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Bytes,
    /// The `Content-Type` the server sent, if any.
    pub content_type: Option<String>,
    /// The last path segment of the final URL, if any.
    pub filename: Option<String>,
}

/// Downloads with the limits above.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// Allow private and loopback addresses (tests only: `WARD_INGEST_ALLOW_PRIVATE`).
    pub allow_private: bool,
    pub timeout: Duration,
    pub max_bytes: u64,
}

impl Fetcher {
    /// Downloads `url`, all of it within [`Fetcher::timeout`].
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        tokio::time::timeout(self.timeout, self.fetch_unbounded(url)).await.map_err(|_| FetchError::Timeout)?
    }

    async fn fetch_unbounded(&self, url: &str) -> Result<Fetched, FetchError> {
        if url.len() > MAX_URL_BYTES {
            return Err(FetchError::BadUrl);
        }
        let mut url = Url::parse(url).map_err(|_| FetchError::BadUrl)?;
        for _ in 0..=MAX_REDIRECTS {
            let response = self.get_once(&url).await?;
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or(FetchError::Status(response.status().as_u16()))?;
                url = url.join(location).map_err(|_| FetchError::BadUrl)?;
                if url.as_str().len() > MAX_URL_BYTES {
                    return Err(FetchError::BadUrl);
                }
                continue;
            }
            if !response.status().is_success() {
                return Err(FetchError::Status(response.status().as_u16()));
            }
            if response.content_length().is_some_and(|len| len > self.max_bytes) {
                return Err(FetchError::TooLarge(self.max_bytes));
            }
            let content_type =
                response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(String::from);
            let filename =
                url.path_segments().and_then(|mut s| s.next_back()).filter(|s| !s.is_empty()).map(String::from);
            let mut body = BytesMut::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| if e.is_timeout() { FetchError::Timeout } else { FetchError::Unreachable })?;
                if (body.len() + chunk.len()) as u64 > self.max_bytes {
                    return Err(FetchError::TooLarge(self.max_bytes));
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(Fetched { bytes: body.freeze(), content_type, filename });
        }
        Err(FetchError::TooManyRedirects)
    }

    async fn get_once(&self, url: &Url) -> Result<reqwest::Response, FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::BadUrl);
        }
        let host = url.host_str().ok_or(FetchError::BadUrl)?.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = url.port_or_known_default().ok_or(FetchError::BadUrl)?;
        let addresses: Vec<SocketAddr> =
            tokio::net::lookup_host((host.as_str(), port)).await.map_err(|_| FetchError::Unreachable)?.collect();
        let Some(first) = addresses.first().copied() else { return Err(FetchError::Unreachable) };
        if !self.allow_private && addresses.iter().any(|a| is_internal(a.ip())) {
            return Err(FetchError::PrivateAddress);
        }
        let client = reqwest::Client::builder()
            // HTTP(S)_PROXY would send the request (and its checked address) elsewhere.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5).min(self.timeout))
            .timeout(self.timeout)
            .resolve(&host, first)
            .build()
            .map_err(|_| FetchError::Unreachable)?;
        client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| if e.is_timeout() { FetchError::Timeout } else { FetchError::Unreachable })
    }
}

/// IPv4 ranges of the IANA IPv4 Special-Purpose Address Registry (and multicast): none is a
/// place a public media URL may lead. (network, prefix length)
const SPECIAL_V4: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),       // "this network"
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (carrier-grade NAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local (cloud metadata services)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation
    ([192, 31, 196, 0], 24), // AS112
    ([192, 52, 193, 0], 24), // AMT
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
    ([192, 168, 0, 0], 16),  // private
    ([192, 175, 48, 0], 24), // direct delegation AS112
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation
    ([203, 0, 113, 0], 24),  // documentation
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and the limited broadcast address
];

/// IPv6 ranges of the IANA IPv6 Special-Purpose Address Registry, multicast, and the
/// deprecated site-local and IPv4-compatible ranges. Ranges that embed an IPv4 address
/// (NAT64, 6to4, Teredo) are refused whole: a gateway would carry the request to whatever
/// IPv4 address is inside.
const SPECIAL_V6: &[([u16; 8], u8)] = &[
    ([0, 0, 0, 0, 0, 0, 0, 0], 96),              // unspecified, loopback, IPv4-compatible
    ([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96),      // NAT64 well-known prefix
    ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),      // NAT64 local use
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64),          // discard-only
    ([0x100, 0, 0, 1, 0, 0, 0, 0], 64),          // dummy prefix
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),         // IETF protocol assignments (Teredo, ORCHID, …)
    ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),     // documentation
    ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),         // 6to4
    ([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48), // direct delegation AS112
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),         // documentation
    ([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),         // segment routing SIDs
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),          // unique local
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),         // link-local
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),         // site-local (deprecated)
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),          // multicast
];

/// Addresses that must not be reached from outside input.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            SPECIAL_V4.iter().any(|(net, len)| {
                let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                bits & mask == u32::from_be_bytes(*net) & mask
            })
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let bits = u128::from(v6);
            SPECIAL_V6.iter().any(|(net, len)| {
                let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
                bits & mask == u128::from(std::net::Ipv6Addr::from(*net)) & mask
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.0.170",
            "192.0.2.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "250.1.2.3",
            "255.255.255.255",
            "192.88.99.1",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:0:4136:e378::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "3fff::1",
            "5f00::1",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    proptest::proptest! {
        #[test]
        fn an_internal_ipv4_address_is_internal_in_every_ipv6_disguise(a in proptest::num::u32::ANY) {
            let v4 = std::net::Ipv4Addr::from(a);
            let internal = is_internal(IpAddr::V4(v4));
            // Mapped: the same verdict; NAT64 and 6to4: always refused.
            proptest::prop_assert_eq!(is_internal(IpAddr::V6(v4.to_ipv6_mapped())), internal);
            let [b0, b1, b2, b3] = v4.octets();
            let nat64 = std::net::Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([b0, b1]), u16::from_be_bytes([b2, b3]));
            let six_to_four = std::net::Ipv6Addr::new(0x2002, u16::from_be_bytes([b0, b1]), u16::from_be_bytes([b2, b3]), 0, 0, 0, 0, 1);
            proptest::prop_assert!(is_internal(IpAddr::V6(nat64)) && is_internal(IpAddr::V6(six_to_four)));
        }
    }

    #[tokio::test]
    async fn loopback_urls_are_refused_unless_allowed() {
        let fetcher = Fetcher { allow_private: false, timeout: Duration::from_secs(2), max_bytes: 10 };
        assert!(matches!(fetcher.fetch("http://127.0.0.1:9/x").await, Err(FetchError::PrivateAddress)));
        assert!(matches!(fetcher.fetch("http://localhost:9/x").await, Err(FetchError::PrivateAddress)));
        assert!(matches!(fetcher.fetch("file:///etc/passwd").await, Err(FetchError::BadUrl)));
        assert!(matches!(fetcher.fetch("not a url").await, Err(FetchError::BadUrl)));
    }
}
