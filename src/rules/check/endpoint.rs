//! Push endpoints: HTTPS, or plain HTTP on loopback only.

pub(super) enum Endpoint {
    Secure,
    Insecure,
    Invalid(&'static str),
}

/// Sorts an endpoint URL into HTTPS, plain HTTP, or not a URL at all.
/// Plain HTTP is accepted on loopback only.
pub(super) fn classify_endpoint(url: &str) -> Endpoint {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Endpoint::Invalid("it has no scheme such as `https://`");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return Endpoint::Invalid("an IPv6 address lacks its closing `]`"),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Endpoint::Invalid("it has no host");
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Endpoint::Invalid("its port is not a number from 0 to 65535");
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Endpoint::Secure,
        "http" if is_loopback(host) => Endpoint::Secure,
        "http" => Endpoint::Insecure,
        _ => Endpoint::Invalid("only `https://` (or `http://` on loopback) is supported"),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_need_https_outside_loopback() {
        assert!(matches!(
            classify_endpoint("https://inbox.example/events"),
            Endpoint::Secure
        ));
        assert!(matches!(
            classify_endpoint("http://127.0.0.1:9000/hook"),
            Endpoint::Secure
        ));
        assert!(matches!(
            classify_endpoint("http://[::1]:9000/hook"),
            Endpoint::Secure
        ));
        assert!(matches!(
            classify_endpoint("http://localhost/hook"),
            Endpoint::Secure
        ));
        assert!(matches!(
            classify_endpoint("http://inbox.example/events"),
            Endpoint::Insecure
        ));
        assert!(matches!(
            classify_endpoint("inbox.example/events"),
            Endpoint::Invalid(_)
        ));
        assert!(matches!(
            classify_endpoint("https://host:99999/"),
            Endpoint::Invalid(_)
        ));
        assert!(matches!(
            classify_endpoint("ftp://host/"),
            Endpoint::Invalid(_)
        ));
    }
}
