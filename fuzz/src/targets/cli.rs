//! What an operator types: the `ectable` and `ecbench` command lines, the lines `import`
//! reads, and the size, time and schema strings the commands parse. Parsing is all that
//! runs: no command touches a device here.

use crate::input::Input;
use clap::Parser;
use ectable_tools::bench::args::{
    distribution_arg, runtime_arg, size_arg, slow_device_arg, BenchArgs,
};
use ectable_tools::bench::checks::check_layout;
use ectable_tools::cli::Cli;
use ectable_tools::cmd::{bulk, table};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

#[derive(Parser, Debug)]
#[command(name = "ecbench")]
struct Bench {
    #[command(flatten)]
    _args: BenchArgs,
}

/// The arguments of a command line: the bytes split at NUL (not UTF-8 checked: clap must
/// refuse bad UTF-8 itself).
fn argv(program: &str, bytes: &[u8]) -> Vec<OsString> {
    std::iter::once(OsString::from(program))
        .chain(
            bytes
                .split(|b| *b == 0)
                .map(|a| OsString::from_vec(a.to_vec())),
        )
        .collect()
}

pub fn cli(data: &[u8]) {
    let mut input = Input::new(data);
    match input.u8() % 5 {
        0 => {
            if let Err(e) = Cli::try_parse_from(argv("ectable", input.rest())) {
                let _ = e.render().to_string();
            }
        }
        1 => {
            if let Err(e) = Bench::try_parse_from(argv("ecbench", input.rest())) {
                let _ = e.render().to_string();
            }
        }
        2 => {
            let schema = super::table::pick_schema(&mut input);
            let line = String::from_utf8_lossy(input.rest());
            let _ = table::parse_row(&schema, &line);
        }
        3 => {
            let _ = bulk::parse_kv_line(&String::from_utf8_lossy(input.rest()));
        }
        _ => {
            let (n, k, m) = (input.below(80), input.below(80), input.below(80));
            let chunk = input.u64() >> input.below(64);
            let rec = input.below(1 << 16) << input.below(8);
            let _ = check_layout(n, k, m, chunk, rec);
            let text = String::from_utf8_lossy(input.rest()).into_owned();
            let _ = ectable_tools::parse_size(&text);
            let _ = ectable_tools::split_devices(&text);
            let _ = size_arg(&text);
            let _ = distribution_arg(&text);
            let _ = slow_device_arg(&text);
            let _ = runtime_arg(&text);
            let _ = ectable_engine::table::Schema::parse(&text);
        }
    }
}
