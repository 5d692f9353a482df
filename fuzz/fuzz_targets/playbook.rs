//! Fuzz the playbook loader: any bytes must give a playbook or located diagnostics, never a
//! panic, a hang or unbounded memory (YAML budgets, template compilation).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = cosell::playbook::parse("fuzz.yaml", &text);
});
