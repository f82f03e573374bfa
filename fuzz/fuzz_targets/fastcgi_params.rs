#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ferrule_proto::fastcgi::decode_params(data, &Default::default());
});
