//! Downloading a file from a URL someone else gave us (the relay forwarding WhatsApp or Twilio
//! media), safely: http(s) only, every hop's addresses checked against private and loopback
//! ranges (and the connection pinned to the checked address, so DNS cannot change its mind),
//! at most a few redirects, a time limit, and a size cap enforced while streaming.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::Url;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 3;

/// Why a download was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the URL is not an http(s) URL with a host")]
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
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
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
                continue;
            }
            if !response.status().is_success() {
                return Err(FetchError::Status(response.status().as_u16()));
            }
            if response.content_length().is_some_and(|len| len > self.max_bytes) {
                return Err(FetchError::TooLarge(self.max_bytes));
            }
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let filename = url.path_segments().and_then(|mut s| s.next_back()).filter(|s| !s.is_empty()).map(String::from);
            let mut body = BytesMut::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| if e.is_timeout() { FetchError::Timeout } else { FetchError::Unreachable })?;
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
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| FetchError::Unreachable)?
            .collect();
        let Some(first) = addresses.first().copied() else { return Err(FetchError::Unreachable) };
        if !self.allow_private && addresses.iter().any(|a| is_internal(a.ip())) {
            return Err(FetchError::PrivateAddress);
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5).min(self.timeout))
            .timeout(self.timeout)
            .resolve(&host, first)
            .build()
            .map_err(|_| FetchError::Unreachable)?;
        client.get(url.clone()).send().await.map_err(|e| if e.is_timeout() { FetchError::Timeout } else { FetchError::Unreachable })
    }
}

/// Addresses that must not be reached from outside input.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "fd00::1", "fe80::1", "::ffff:127.0.0.1"] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
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
