#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ferrule_proto::http1::parse_request(&mut data.into(), &Default::default());
});
