//! Just enough DER to read an X.509 certificate's validity and whether it is self-signed (issuer
//! equal to subject) — what pinning needs and webpki will not tell for a certificate it refuses.
//! Never panics: every read is bounded by the input.

/// What pinning needs of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Validity, in seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    pub self_signed: bool,
}

/// One DER element: `(tag, contents, the rest of the input)`.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(n);
        (len_bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The validity and self-signedness of a DER certificate; `None` if it is not one.
pub fn parse(der: &[u8]) -> Option<CertInfo> {
    let (SEQUENCE, certificate, _) = element(der)? else { return None };
    let (SEQUENCE, tbs, _) = element(certificate)? else { return None };
    let mut fields = tbs;
    let (mut tag, mut value, mut rest) = element(fields)?;
    if tag == 0xa0 {
        // [0] EXPLICIT version
        fields = rest;
        (tag, value, rest) = element(fields)?;
    }
    let _serial = (tag, value);
    let (_, _signature, rest) = element(rest)?;
    let (SEQUENCE, issuer, rest) = element(rest)? else { return None };
    let (SEQUENCE, validity, rest) = element(rest)? else { return None };
    let (SEQUENCE, subject, _) = element(rest)? else { return None };
    let (before_tag, before, after_rest) = element(validity)?;
    let (after_tag, after, _) = element(after_rest)?;
    Some(CertInfo {
        not_before: time(before_tag, before)?,
        not_after: time(after_tag, after)?,
        self_signed: issuer == subject,
    })
}

/// UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ` → seconds since the epoch.
fn time(tag: u8, value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        UTC_TIME => {
            let yy: i32 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        GENERALIZED_TIME => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    let number = |range: std::ops::Range<usize>| rest.get(range).and_then(|s| s.parse::<u32>().ok());
    let date = chrono::NaiveDate::from_ymd_opt(year, number(0..2)?, number(2..4)?)?;
    let at = date.and_hms_opt(number(4..6)?, number(6..8)?, number(8..10)?)?;
    Some(at.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_both_encodings() {
        assert_eq!(time(UTC_TIME, b"370101000000Z"), Some(2114380800));
        assert_eq!(time(GENERALIZED_TIME, b"20370101000000Z"), Some(2114380800));
        assert_eq!(time(UTC_TIME, b"990101000000Z"), Some(915148800));
        assert_eq!(time(UTC_TIME, b"99010100000"), None);
        assert_eq!(time(0x05, b"370101000000Z"), None);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(parse(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
    }
}
