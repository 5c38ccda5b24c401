//! The server name from a TLS ClientHello, read without terminating TLS.
//!
//! Hand-written: a TLS library would parse the whole handshake and wants to own the stream;
//! passthrough needs only this one field from the first record.

#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// More bytes are needed.
    Incomplete,
    /// Not a ClientHello, or one without a host-name SNI.
    NoSni,
    Sni(String),
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| b[0] as usize)
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2).map(|b| (b[0] as usize) << 8 | b[1] as usize)
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize)
    }
}

pub fn parse(data: &[u8]) -> Parse {
    let mut r = Reader(data);
    // Record header: handshake (22), version, length.
    match r.u8() {
        None => return Parse::Incomplete,
        Some(22) => {}
        Some(_) => return Parse::NoSni,
    }
    let Some(len) = r.take(2).and(r.u16()) else {
        return Parse::Incomplete;
    };
    let Some(record) = r.take(len) else {
        return Parse::Incomplete;
    };
    client_hello(record).map_or(Parse::NoSni, Parse::Sni)
}

fn client_hello(record: &[u8]) -> Option<String> {
    let mut r = Reader(record);
    if r.u8()? != 1 {
        return None;
    }
    let len = r.u24()?;
    let mut r = Reader(r.take(len)?);
    r.take(2 + 32)?; // version, random
    let sid = r.u8()?;
    r.take(sid)?;
    let suites = r.u16()?;
    r.take(suites)?;
    let comp = r.u8()?;
    r.take(comp)?;
    let ext_len = r.u16()?;
    let mut exts = Reader(r.take(ext_len)?);
    while !exts.0.is_empty() {
        let ty = exts.u16()?;
        let len = exts.u16()?;
        let body = exts.take(len)?;
        if ty != 0 {
            continue;
        }
        let mut list = Reader(body);
        let list_len = list.u16()?;
        let mut names = Reader(list.take(list_len)?);
        while !names.0.is_empty() {
            let kind = names.u8()?;
            let n = names.u16()?;
            let name = names.take(n)?;
            if kind == 0 {
                return std::str::from_utf8(name).ok().map(str::to_string);
            }
        }
    }
    None
}

/// The ALPN protocols a complete ClientHello offers (empty when it offers none); `None` while
/// the record is incomplete or when it is not a ClientHello.
pub fn alpn(data: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader(data);
    if r.u8()? != 22 {
        return None;
    }
    r.take(2)?;
    let len = r.u16()?;
    let record = r.take(len)?;
    let mut r = Reader(record);
    if r.u8()? != 1 {
        return None;
    }
    let len = r.u24()?;
    let mut r = Reader(r.take(len)?);
    r.take(2 + 32)?;
    let sid = r.u8()?;
    r.take(sid)?;
    let suites = r.u16()?;
    r.take(suites)?;
    let comp = r.u8()?;
    r.take(comp)?;
    let mut out = Vec::new();
    if r.0.is_empty() {
        return Some(out);
    }
    let ext_len = r.u16()?;
    let mut exts = Reader(r.take(ext_len)?);
    while !exts.0.is_empty() {
        let ty = exts.u16()?;
        let len = exts.u16()?;
        let body = exts.take(len)?;
        // application_layer_protocol_negotiation (RFC 7301)
        if ty != 16 {
            continue;
        }
        let mut list = Reader(body);
        let list_len = list.u16()?;
        let mut names = Reader(list.take(list_len)?);
        while !names.0.is_empty() {
            let n = names.u8()?;
            out.push(String::from_utf8_lossy(names.take(n)?).into_owned());
        }
    }
    Some(out)
}

/// A minimal ClientHello carrying `sni`, for tests here and in the integration suite.
pub fn client_hello_for(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut sni_ext = Vec::new();
    sni_ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni_ext.push(0);
    sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni_ext.extend_from_slice(name);
    let mut exts = vec![0, 0];
    exts.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sni_ext);
    let mut hello = vec![3, 3];
    hello.extend_from_slice(&[7u8; 32]);
    hello.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    hello.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    hello.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&hello);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sni_and_reports_short_input() {
        let hello = client_hello_for("reviews.example.com");
        assert_eq!(parse(&hello), Parse::Sni("reviews.example.com".into()));
        assert_eq!(parse(&hello[..10]), Parse::Incomplete);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parse::NoSni);
        let mut broken = hello.clone();
        broken[5] = 2; // not a ClientHello
        assert_eq!(parse(&broken), Parse::NoSni);
    }

    /// Untrusted bytes: every truncation and random corruption of a real hello must parse to
    /// something without panicking (a cheap stand-in for a fuzz target).
    #[test]
    fn survives_truncated_and_corrupted_input() {
        let hello = client_hello_for("a.example.com");
        for n in 0..hello.len() {
            let _ = parse(&hello[..n]);
        }
        let mut rng = fastrand::Rng::with_seed(42);
        for _ in 0..20_000 {
            let mut b = hello.clone();
            for _ in 0..rng.usize(1..6) {
                let i = rng.usize(..b.len());
                b[i] = rng.u8(..);
            }
            let _ = parse(&b);
        }
    }
}
