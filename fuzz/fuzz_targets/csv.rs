//! Fuzz the CSV reader: any bytes must give rows or located diagnostics, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(data).expect("write");
    if let Ok(mut reader) = cosell::input::CsvReader::open(f.path(), "fuzz.csv") {
        while let Some(record) = reader.next_record() {
            if record.is_err() {
                // the reader stops at the first broken record, as validate reports it
                break;
            }
        }
    }
});
