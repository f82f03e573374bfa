#![no_main]
use ferrule_proto::forwarded::{resolve_forwarded, ForwardedHeaders, TrustList};

// The data split on NUL into the six headers; the peer trusted, and so are 10.0.0.0/8 and ::1.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&c| c == 0);
    let headers = ForwardedHeaders {
        forwarded: parts.next(),
        x_forwarded_for: parts.next(),
        x_forwarded_proto: parts.next(),
        x_forwarded_host: parts.next(),
        x_forwarded_port: parts.next(),
        x_forwarded_prefix: parts.next(),
    };
    let trust: TrustList = "127.0.0.1,::1,10.0.0.0/8".parse().expect("valid list");
    let _ = resolve_forwarded([127, 0, 0, 1].into(), &trust, &headers);
    let _ = std::str::from_utf8(data).map(str::parse::<TrustList>);
});
