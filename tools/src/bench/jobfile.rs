//! fio job files for ecbench: `ecbench JOBFILE [OPTIONS]` reads a [global] section and one
//! job section and turns every `key=value` (or bare `key`) into the command-line option of
//! the same fio name, so one file drives fio and ecbench alike. The file's options come
//! first and the command line's after them, so the command line wins. An option ecbench
//! does not support is an error naming the file and line; nothing is run.

use clap::{ArgAction, Command};
use std::ffi::OsString;
use std::path::Path;

/// One option of the file: (line number, key, value if any).
type Entry = (usize, String, Option<String>);

/// The command line with the job file's options put in front of the given ones.
/// `argv[0]` is the program name; `file` is the job file named on the command line.
pub fn expand(cmd: &Command, file: &Path, argv: &[OsString]) -> Result<Vec<OsString>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read job file {}: {e}", file.display()))?;
    let name = file.display();
    let (global, jobs) = parse(&text).map_err(|e| format!("job file {name}: {e}"))?;
    let (job_name, job) = match jobs.as_slice() {
        [one] => one,
        [] => {
            return Err(format!(
                "job file {name} has no job section ([global] only)"
            ))
        }
        many => {
            let names: Vec<&str> = many.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "job file {name} has {} job sections ({}); ecbench runs one job \
                 (use numjobs= for several threads)",
                many.len(),
                names.join(", ")
            ));
        }
    };
    let mut out: Vec<OsString> = argv.iter().take(1).cloned().collect();
    out.push(format!("--name={job_name}").into());
    for (line, key, value) in global.iter().chain(job) {
        let arg = to_arg(cmd, key, value.as_deref())
            .map_err(|e| format!("job file {name} line {line}: {e}"))?;
        out.extend(arg.into_iter().map(OsString::from));
    }
    out.extend(argv.iter().skip(1).cloned());
    Ok(out)
}

/// Sections of an INI-style fio job file: the [global] entries and each job's.
#[allow(clippy::type_complexity)]
fn parse(text: &str) -> Result<(Vec<Entry>, Vec<(String, Vec<Entry>)>), String> {
    let (mut global, mut jobs) = (Vec::new(), Vec::<(String, Vec<Entry>)>::new());
    let mut in_global: Option<bool> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            let section = section
                .strip_suffix(']')
                .ok_or_else(|| format!("line {}: unterminated section header", i + 1))?
                .trim();
            if section.is_empty() {
                return Err(format!("line {}: empty section name", i + 1));
            }
            in_global = Some(section == "global");
            if section != "global" {
                jobs.push((section.to_string(), Vec::new()));
            }
            continue;
        }
        let entry = match line.split_once('=') {
            Some((k, v)) => (i + 1, k.trim().to_string(), Some(v.trim().to_string())),
            None => (i + 1, line.to_string(), None),
        };
        match in_global {
            None => return Err(format!("line {}: option outside a section", i + 1)),
            Some(true) => global.push(entry),
            Some(false) => {
                if let Some((_, entries)) = jobs.last_mut() {
                    entries.push(entry);
                }
            }
        }
    }
    Ok((global, jobs))
}

/// The command-line words for one option of the file (none for a flag set to 0).
fn to_arg(cmd: &Command, key: &str, value: Option<&str>) -> Result<Vec<String>, String> {
    let dashed = key.replace('_', "-");
    let found = cmd.get_arguments().find(|a| {
        a.get_long().is_some_and(|l| l == key || l == dashed)
            || a.get_all_aliases()
                .is_some_and(|al| al.iter().any(|x| *x == key || *x == dashed))
    });
    let Some(arg) = found else {
        return Err(format!("fio option '{key}' is not supported by ecbench"));
    };
    let Some(long) = arg.get_long() else {
        return Err(format!("option '{key}' cannot be given in a job file"));
    };
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return match value {
            None | Some("1") | Some("true") => Ok(vec![format!("--{long}")]),
            Some("0") | Some("false") => Ok(Vec::new()),
            Some(v) => Err(format!("'{key}' is a switch: give 0 or 1, not '{v}'")),
        };
    }
    match value {
        Some(v) => Ok(vec![format!("--{long}={v}")]),
        None => Err(format!("'{key}' needs a value ({key}=...)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::args::BenchArgs;
    use clap::{Args, Parser};

    #[derive(Parser, Debug)]
    #[command(args_override_self = true)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn cmd() -> Command {
        BenchArgs::augment_args(Command::new("ecbench"))
    }

    fn run(text: &str, cli: &[&str]) -> Result<BenchArgs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("job.fio");
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        let mut argv: Vec<OsString> = vec!["ecbench".into(), path.clone().into()];
        argv.extend(cli.iter().map(OsString::from));
        let full = expand(&cmd(), &path, &argv)?;
        Cli::try_parse_from(full)
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_fio_job_file_sets_the_options_and_the_command_line_wins() {
        let job = "; a fio job file\n[global]\nioengine=io_uring\ndirect=1\nbs=4k\n\
                   time_based\nruntime=5\n\n[randread-qd32]\nrw=randread\niodepth=32\n\
                   filename=a:b:c\nsize=16M\npercentile_list=50:99\n";
        let a = run(job, &["--iodepth", "8"]).unwrap();
        assert_eq!(a.name, "randread-qd32");
        assert_eq!((a.bs, a.iodepth, a.size), (4096, 8, Some(16 << 20)));
        assert!(a.time_based && a.devices == "a:b:c");
        assert_eq!(a.runtime, Some(std::time::Duration::from_secs(5)));
        assert_eq!(a.percentiles(), vec![50.0, 99.0]);
    }

    #[test]
    fn unsupported_options_and_several_jobs_are_clear_errors() {
        let e = run("[j]\nrw=read\nfilename=a\nverify=crc32c\nstonewall\n", &[]).unwrap_err();
        assert!(e.contains("verify"), "{e}");
        let e = run("[j]\nrw=read\nfilename=a\nzonemode=zbd\n", &[]).unwrap_err();
        assert!(e.contains("line 4") && e.contains("zonemode"), "{e}");
        let e = run("[a]\nrw=read\n[b]\nrw=write\n", &[]).unwrap_err();
        assert!(e.contains("2 job sections (a, b)"), "{e}");
        let e = run("[global]\nrw=read\n", &[]).unwrap_err();
        assert!(e.contains("no job section"), "{e}");
        let e = run("rw=read\n", &[]).unwrap_err();
        assert!(e.contains("outside a section"), "{e}");
        let e = run("[j]\ntime_based=yes\n", &[]).unwrap_err();
        assert!(e.contains("switch"), "{e}");
    }
}
