//! Bytes to parsed, decoded and validated resources: whatever the input, the result is a list of
//! resources or problems, never a panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for d in api::load_str("fuzz.yaml", &text) {
        match d {
            api::Decoded::Resource(r) => {
                let _ = r.problems();
            }
            api::Decoded::Invalid(problems) => assert!(!problems.is_empty()),
            api::Decoded::Other(_) => {}
        }
    }
});
