//! Where a notification may be sent: public addresses only. A webhook URL is typed by a person
//! (or, through a compromised settings session, by an attacker), so without this guard it
//! could make the server call its own loopback services, the cloud metadata endpoint or the
//! private network (server-side request forgery).
//!
//! Two checks, both before any connection: a host that is an IP literal is judged directly; a
//! name is resolved by [`GuardedResolver`], which refuses the whole name if any of its
//! addresses is not public and otherwise hands exactly the checked addresses to the connector.
//! The connection is made to what was checked, so a DNS answer that changes between a check and
//! the connect (rebinding) changes nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::{domain::notify::delivery::DeliveryError, outbound::client_directory::is_public};

/// A name resolved to an address a notification may not go to. Carried through reqwest's error
/// chain so the adapter can tell it from a lookup failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the destination resolves to an address that is not public")]
pub struct ForbiddenTarget;

/// Whether a notification may be sent to `ip`: a public unicast address, never loopback,
/// private (RFC 1918), CGNAT, link-local, unique-local, unspecified, multicast, broadcast,
/// documentation, benchmarking or reserved, nor an IPv6 form that embeds or tunnels to one of
/// those. `allow_loopback` (tests only) lets loopback through, and nothing else.
#[must_use]
pub fn is_allowed_target(ip: IpAddr, allow_loopback: bool) -> bool {
    // `::ffff:127.0.0.1` is 127.0.0.1 on the wire.
    let ip = ip.to_canonical();
    if allow_loopback && ip.is_loopback() {
        return true;
    }
    // `is_public` is the metadata-document fetch's rule; what it lets through and a notification
    // must not reach is refused here.
    is_public(ip) && !is_also_special(ip)
}

/// Ranges `is_public` does not name: IETF protocol assignments and the 6to4 relay (IPv4);
/// IPv4-compatible, NAT64 local-use, Teredo, benchmarking, site-local, discard-only and the
/// new documentation prefix (IPv6); NAT64 and 6to4 addresses judged by the IPv4 address they
/// carry.
fn is_also_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            (a, b, c) == (192, 0, 0) || (a, b, c) == (192, 88, 99)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                let [h1, h2] = hi.to_be_bytes();
                let [l1, l2] = lo.to_be_bytes();
                !is_public(IpAddr::V4(Ipv4Addr::new(h1, h2, l1, l2)))
            };
            // ::/96, IPv4-compatible (deprecated), with :: and ::1.
            s[..6] == [0; 6]
                // 64:ff9b::/96, NAT64: reaches the IPv4 address in its last 32 bits.
                || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && embedded(s[6], s[7]))
                // 64:ff9b:1::/48, local-use NAT64.
                || s[..3] == [0x64, 0xff9b, 1]
                // 2002::/16, 6to4: reaches the IPv4 address in bits 16–47.
                || (s[0] == 0x2002 && embedded(s[1], s[2]))
                // 2001::/32, Teredo (a tunnel).
                || s[..2] == [0x2001, 0]
                // 2001:2::/48, benchmarking.
                || s[..3] == [0x2001, 2, 0]
                // fec0::/10, site-local (deprecated).
                || (s[0] & 0xffc0) == 0xfec0
                // 100::/64, discard-only.
                || s[..4] == [0x100, 0, 0, 0]
                // 3fff::/20, documentation (RFC 9637).
                || (s[0] & 0xfff0) == 0x3ff0
        }
    }
}

/// Refuses a URL whose host is an IP literal that is not an allowed target (the connector
/// never asks the resolver about those). A name passes: [`GuardedResolver`] judges it.
///
/// # Errors
/// [`DeliveryError::ForbiddenAddress`] for a refused literal, [`DeliveryError::Misconfigured`]
/// for a URL without a host.
pub fn check_url(url: &Url, allow_loopback: bool) -> Result<(), DeliveryError> {
    let ip = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(Host::Domain(name)) => match name.parse::<IpAddr>() {
            // Special schemes parse literals into `Ipv4`/`Ipv6`; this is for any other.
            Ok(ip) => ip,
            Err(_) => return Ok(()),
        },
        None => return Err(DeliveryError::Misconfigured("the URL has no host".into())),
    };
    if is_allowed_target(ip, allow_loopback) {
        Ok(())
    } else {
        Err(DeliveryError::ForbiddenAddress)
    }
}

/// reqwest's resolver for notifications: the system resolver, then [`is_allowed_target`] on
/// every address, all or nothing.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// Let loopback through (tests only).
    pub allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the connector puts the URL's port in.
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // Any one bad address refuses the name: the connector may try them all, and a
            // name that mixes public and private addresses is an attack or a mistake.
            if addrs.is_empty()
                || addrs
                    .iter()
                    .any(|a| !is_allowed_target(a.ip(), allow_loopback))
            {
                return Err(Box::new(ForbiddenTarget) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_allowed() {
        let refused = [
            // IPv4
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:2::1",
            "2001:db8::1",
            "2002:a00:1::1",
            "2002:7f00:1::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
        ];
        for ip in refused {
            assert!(!is_allowed_target(ip.parse().unwrap(), false), "{ip}");
        }
        let allowed = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "2606:2800:220:1:248:1893:25c8:1946",
            "2a00:1450:4001::1",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
            "2002:101:101::1",
        ];
        for ip in allowed {
            assert!(is_allowed_target(ip.parse().unwrap(), false), "{ip}");
        }
    }

    #[test]
    fn the_test_flag_lets_loopback_through_and_nothing_else() {
        for ip in ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"] {
            assert!(is_allowed_target(ip.parse().unwrap(), true), "{ip}");
        }
        for ip in [
            "10.0.0.1",
            "169.254.169.254",
            "192.168.0.1",
            "fc00::1",
            "0.0.0.0",
            "::",
        ] {
            assert!(!is_allowed_target(ip.parse().unwrap(), true), "{ip}");
        }
    }

    #[test]
    fn ip_literal_urls_are_judged_before_any_connection() {
        for raw in [
            "https://127.0.0.1:8443/",
            "https://[::1]/",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.1/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            // WHATWG spellings of 127.0.0.1.
            "https://2130706433/",
            "https://0x7f.1/",
            "https://127.1/",
            "https://0/",
        ] {
            let url = Url::parse(raw).unwrap();
            assert_eq!(
                check_url(&url, false),
                Err(DeliveryError::ForbiddenAddress),
                "{raw}"
            );
        }
        for raw in [
            "https://hooks.example.com/",
            "https://1.1.1.1/",
            "https://[2a00:1450:4001::1]/",
        ] {
            assert_eq!(check_url(&Url::parse(raw).unwrap(), false), Ok(()), "{raw}");
        }
        assert_eq!(
            check_url(&Url::parse("https://127.0.0.1:9/").unwrap(), true),
            Ok(())
        );
        assert_eq!(
            check_url(&Url::parse("https://10.0.0.1/").unwrap(), true),
            Err(DeliveryError::ForbiddenAddress)
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_loopback_addresses() {
        // `localhost` resolves from /etc/hosts: no traffic leaves the machine.
        let refused = GuardedResolver {
            allow_loopback: false,
        }
        .resolve("localhost".parse().unwrap())
        .await;
        let err = refused.err().unwrap();
        assert!(err.downcast_ref::<ForbiddenTarget>().is_some(), "{err}");
        let allowed = GuardedResolver {
            allow_loopback: true,
        }
        .resolve("localhost".parse().unwrap())
        .await
        .unwrap();
        assert!(allowed.into_iter().all(|a| a.ip().is_loopback()));
    }
}
