#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ferrule_proto::proxy_protocol::parse_proxy_header(data);
});
