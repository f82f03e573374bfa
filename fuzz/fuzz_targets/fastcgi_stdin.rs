#![no_main]
use ferrule_proto::fastcgi::StdinDecoder;

// Feeds the bytes to a STDIN decoder for request 1, 7 data bytes at a time.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut dec = StdinDecoder::new(1, 1 << 20);
    let mut rest = data;
    while let Ok((used @ 1.., _)) = dec.decode(rest, 7) {
        rest = &rest[used..];
    }
});
