//! Syntax cases, checked against what cel-go accepts and refuses.

use super::{parse, MAX_DEPTH};

#[test]
fn valid_expressions() {
    for ok in [
        "true",
        "response.code >= 400",
        "response.code >= 400 && request.url_path.startsWith('/api')",
        "!(a || b) ? 1 : -2.5e3",
        "request.headers['x-user'] == \"bob\"",
        "[1, 2, 3,].exists(x, x > 2)",
        "{'a': 1u, 'b': 0x1F}",
        "has(request.headers.foo)",
        "a.b.C{f: 1, g: [],}",
        ".a.b",
        "size(r'\\d+') in [1]",
        "b'\\x00\\377' != b''",
        "'''multi\nline'''",
        "x // comment",
        "!-1",
        "--1",
        "-9223372036854775808",
        "[,]",
        "m.map(k, v, k)",
        "a.`b-c`",
        "has((a.b))",
    ] {
        assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok));
    }
}

#[test]
fn invalid_expressions() {
    for bad in [
        "",
        "1 +",
        "a b",
        "a = b",
        "a & b",
        "(a",
        "'unterminated",
        "\"bad \\q escape\"",
        "'\\uD800'",
        "has(a)",
        "x.all(a.b, true)",
        "x.map(1, 2)",
        "if",
        "a.?b",
        "!-a",
        "9223372036854775808",
        "18446744073709551616u",
        "a.true",
        "{1}",
        "a ? b",
        "1..2",
        "'a\nb'",
        "#",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn noise_never_panics() {
    const ALPHABET: &[u8] = b"ab_1x.0u\"'rRbB\\()[]{}!-+*/%<>=&|?:,` \n\teE";
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        let len = (seed % 24) as usize;
        let mut s = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s.push(ALPHABET[(seed % ALPHABET.len() as u64) as usize]);
        }
        let text = String::from_utf8(s).unwrap_or_default();
        let _ = parse(&text);
    }
    let _ = parse(&"[".repeat(100_000));
    let _ = parse(&"!".repeat(100_000));
    let _ = parse(&"a.b".repeat(30_000));
}

/// Nesting up to the limit fits the default 2 MiB stack of a spawned thread, even unoptimised.
#[test]
fn nesting_at_the_limit_fits_a_thread_stack() {
    let run = || {
        let n = MAX_DEPTH - 1;
        let cases = [
            format!("{}1{}", "[".repeat(n), "]".repeat(n)),
            format!("{}1{}", "f(".repeat(n), ")".repeat(n)),
            format!("{}1{}", "{1:".repeat(n), "}".repeat(n)),
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            format!("{}1", "a ? b : ".repeat(n)),
            format!("{}1{}", "x.all(v, ".repeat(n), ")".repeat(n)),
            format!("{}1{}", "A{f: ".repeat(n), "}".repeat(n)),
            format!("{}1{}", "a[".repeat(n), "]".repeat(n)),
            format!("{}1{}", "!(".repeat(n), ")".repeat(n)),
            format!("{}1{}", "1 + (".repeat(n), ")".repeat(n)),
        ];
        for c in &cases {
            assert!(parse(c).is_ok(), "{}", &c[..20]);
        }
    };
    let t = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(run)
        .expect("thread starts");
    assert!(t.join().is_ok());
}

#[test]
fn deep_nesting_is_limited() {
    let deep = format!("{}1{}", "(".repeat(300), ")".repeat(300));
    assert!(parse(&deep).is_err());
    let ok = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    assert!(parse(&ok).is_ok());
}
