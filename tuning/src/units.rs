//! Humane value syntax: duration strings (`"100ms"`, `"1.5s"`, `"5m"`) and strict CIDR
//! prefixes, plus the serde adapters the schema uses to decode straight into
//! [`Duration`] and [`IpNet`].

use std::fmt;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

const UNITS: &str = "us, ms, s, m, h";

/// Parses a duration string: a non-negative decimal number immediately followed by one of
/// the units `us`, `ms`, `s`, `m`, `h` (`"50us"`, `"100ms"`, `"1s"`, `"2.5s"`, `"1m"`, `"1h"`).
///
/// A number without a unit is rejected (is `"5"` five seconds or five milliseconds?), as
/// are whitespace, signs and exponents. Fractions are exact to the nanosecond.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let syntax = || {
        format!(
            "invalid duration {s:?}: expected a number followed by a unit ({UNITS}), \
             e.g. \"100ms\", \"1.5s\" or \"5m\""
        )
    };
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let unit_nanos: u128 = match unit {
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" if !number.is_empty() => {
            return Err(format!(
                "invalid duration {s:?}: missing unit; write e.g. \"{s}s\" or \"{s}ms\""
            ))
        }
        _ => return Err(syntax()),
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty()
        || frac.contains('.')
        || (number.contains('.') && frac.is_empty())
        || frac.len() > 18
    {
        return Err(syntax());
    }
    let too_large = || format!("invalid duration {s:?}: too large");
    let int: u128 = int.parse().map_err(|_| too_large())?;
    let frac_value: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| syntax())?
    };
    let scale = 10u128.pow(frac.len() as u32);
    let nanos = int
        .checked_mul(unit_nanos)
        .and_then(|n| n.checked_add(frac_value * unit_nanos / scale))
        .ok_or_else(too_large)?;
    let nanos = u64::try_from(nanos).map_err(|_| too_large())?;
    Ok(Duration::from_nanos(nanos))
}

/// Formats a duration the way an operator would write it in the config
/// (`100ms`, `1s`, `5m`, `1h`, `1500ms`), so messages can be pasted back.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    const MS: u128 = 1_000_000;
    const S: u128 = 1_000 * MS;
    match nanos {
        0 => "0s".to_owned(),
        n if n % (3600 * S) == 0 => format!("{}h", n / (3600 * S)),
        n if n % (60 * S) == 0 => format!("{}m", n / (60 * S)),
        n if n % S == 0 => format!("{}s", n / S),
        n if n % MS == 0 => format!("{}ms", n / MS),
        n if n % 1_000 == 0 => format!("{}us", n / 1_000),
        _ => format!("{d:?}"),
    }
}

/// Parses a CIDR prefix strictly: `ADDRESS/LENGTH`, no host bits set.
///
/// A bare address is rejected with a hint to write `/32` (or `/128`), and
/// `"10.0.0.1/24"` is rejected with the network and host spellings it may have meant:
/// silently truncating it would monitor 256 addresses where the operator may have meant one.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let Some((addr_text, len_text)) = s.split_once('/') else {
        return Err(match s.parse::<IpAddr>() {
            Ok(addr) => format!(
                "invalid CIDR {s:?}: missing prefix length; write \"{s}/{}\" for a single host",
                max_len(addr)
            ),
            Err(_) => format!(
                "invalid CIDR {s:?}: expected ADDRESS/LENGTH, e.g. \"192.0.2.0/24\" or \"2001:db8::/32\""
            ),
        });
    };
    let addr: IpAddr = addr_text
        .parse()
        .map_err(|_| format!("invalid CIDR {s:?}: {addr_text:?} is not an IPv4 or IPv6 address"))?;
    let max = max_len(addr);
    let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
    let len = Some(len_text)
        .filter(|t| !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u8>().ok())
        .filter(|&l| l <= max)
        .ok_or_else(|| {
            format!("invalid CIDR {s:?}: prefix length must be 0..={max} for an {family} address")
        })?;
    let net = IpNet::new(addr, len)
        .map_err(|_| format!("invalid CIDR {s:?}: prefix length out of range"))?;
    let network = net.trunc();
    if network.addr() != addr {
        return Err(format!(
            "invalid CIDR {s:?}: host bits are set; did you mean the network \"{network}\" \
             or the single host \"{addr}/{max}\"?"
        ));
    }
    Ok(net)
}

fn max_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

/// A [`Duration`] decoded from a duration string (see [`parse_duration`]).
struct HumanDuration(Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a duration string with a unit ({UNITS}), e.g. \"1s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "invalid duration {v}: a bare number is ambiguous; write a string with a \
                     unit, e.g. \"{v}s\" or \"{v}ms\""
                )))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                self.visit_i64(v as i64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "invalid duration {v}: a bare number is ambiguous; write a string with a \
                     unit, e.g. \"{v}s\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// An [`IpNet`] decoded strictly (see [`parse_cidr`]).
struct Cidr(IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Cidr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a CIDR prefix string, e.g. \"192.0.2.0/24\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cidr, E> {
                parse_cidr(v).map(Cidr).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A positive integer, with a plain-words error for 0 and negatives.
struct Positive(u64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Positive;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a positive integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Positive, E> {
                match u64::try_from(v) {
                    Ok(v) if v > 0 => Ok(Positive(v)),
                    _ => Err(E::custom(format!("invalid value {v}: must be at least 1"))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Positive, E> {
                match v {
                    0 => Err(E::custom("invalid value 0: must be at least 1")),
                    v => Ok(Positive(v)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// serde adapters used with `#[serde(deserialize_with = "...")]`.
pub(crate) mod serde_with {
    use super::*;

    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        HumanDuration::deserialize(d).map(|h| h.0)
    }

    pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        duration(d).map(Some)
    }

    pub fn positive_u64<'de, D: Deserializer<'de>>(d: D) -> Result<NonZeroU64, D::Error> {
        let v = Positive::deserialize(d)?.0;
        NonZeroU64::new(v).ok_or_else(|| de::Error::custom("invalid value 0: must be at least 1"))
    }

    pub fn positive_u32<'de, D: Deserializer<'de>>(d: D) -> Result<NonZeroU32, D::Error> {
        let v = positive_u64(d)?;
        u32::try_from(v.get())
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(|| de::Error::custom(format!("invalid value {v}: at most {}", u32::MAX)))
    }

    pub fn opt_positive_u64<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<NonZeroU64>, D::Error> {
        positive_u64(d).map(Some)
    }

    pub fn opt_positive_u32<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<NonZeroU32>, D::Error> {
        positive_u32(d).map(Some)
    }

    pub fn cidr<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        Cidr::deserialize(d).map(|c| c.0)
    }

    pub fn cidrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        Vec::<Cidr>::deserialize(d).map(|v| v.into_iter().map(|c| c.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("100ms"), Ok(ms(100)));
        assert_eq!(parse_duration("1s"), Ok(ms(1000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("2.5s"), Ok(ms(2500)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("0.1s"), Ok(ms(100)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0.000000001s"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse_duration("50us"), Ok(Duration::from_micros(50)));
    }

    #[test]
    fn durations_reject_bad_syntax() {
        for bad in [
            "", "s", "1", "1 s", " 1s", "-1s", "1.s", ".5s", "1.2.3s", "1sec", "1d", "1e3ms", "1S",
            "1s5",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = parse_duration("5").unwrap_err();
        assert!(e.contains("missing unit") && e.contains("\"5s\""), "{e}");
        assert!(parse_duration("99999999999999999999h")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn durations_format_round_trip() {
        for s in ["100ms", "1s", "1500ms", "5m", "1h", "0s", "90s", "50us"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }

    #[test]
    fn cidrs_parse_strictly() {
        assert_eq!(
            parse_cidr("192.0.2.0/24").unwrap().to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            parse_cidr("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(parse_cidr("198.51.100.53/32").unwrap().prefix_len(), 32);
        assert_eq!(parse_cidr("0.0.0.0/0").unwrap().prefix_len(), 0);

        let e = parse_cidr("10.0.0.0/33").unwrap_err();
        assert!(
            e.starts_with("invalid CIDR \"10.0.0.0/33\": prefix length must be 0..=32"),
            "{e}"
        );
        let e = parse_cidr("2001:db8::/129").unwrap_err();
        assert!(e.contains("0..=128 for an IPv6"), "{e}");
        let e = parse_cidr("10.0.0.1/24").unwrap_err();
        assert!(e.contains("host bits are set"), "{e}");
        assert!(
            e.contains("\"10.0.0.0/24\"") && e.contains("\"10.0.0.1/32\""),
            "{e}"
        );
        let e = parse_cidr("198.51.100.53").unwrap_err();
        assert!(
            e.contains("missing prefix length") && e.contains("\"198.51.100.53/32\""),
            "{e}"
        );
        for bad in [
            "",
            "/24",
            "10.0.0/24",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "host/8",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
