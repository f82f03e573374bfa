#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ferrule_proto::uwsgi::parse_packet(&mut data.into(), &Default::default());
    let _ = ferrule_proto::uwsgi::looks_like_http(data);
});
