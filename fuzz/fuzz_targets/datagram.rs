//! Fuzz target: any bytes given to the datagram decoder. It must never
//! panic, and whatever it accepts must encode back to a frame that decodes
//! to the same message (the collector re-reads nothing, but the Python and
//! Rust encoders are held to the same bytes).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = egress_proto::decode(data) {
        if let Ok(frame) = egress_proto::encode(&message) {
            let again = egress_proto::decode(&frame).expect("an encoded frame decodes");
            assert_eq!(again, message, "decode(encode(m)) == m");
        }
    }
});
