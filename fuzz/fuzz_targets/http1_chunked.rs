#![no_main]
use ferrule_proto::http1::ChunkedDecoder;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut dec = ChunkedDecoder::new(1024, 1 << 20);
    let mut rest = data;
    while let Ok((used @ 1.., _)) = dec.decode(rest, 7) {
        rest = &rest[used..];
    }
});
