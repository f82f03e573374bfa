#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ferrule_proto::scgi::parse_head(&mut data.into(), &Default::default());
});
