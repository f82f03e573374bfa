#![no_main]
use ferrule_proto::fastcgi::HeadDecoder;

// Feeds every record to a head decoder, as a connection does between requests.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut dec = HeadDecoder::new(Default::default());
    let mut rest = data;
    while let Ok((used @ 1.., _)) = dec.decode(rest) {
        rest = &rest[used..];
    }
});
