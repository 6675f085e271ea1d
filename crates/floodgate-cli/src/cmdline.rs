//! A password given on the command line (`-pSECRET`, `--password=SECRET`, `--password
//! SECRET`) would stay readable in /proc/PID/cmdline, and so in `ps`, for the whole run. As
//! the mysql client does, floodgate overwrites it in its own argument memory as soon as it
//! has read it (the argument then reads `-px`), and warns that the command line is no place
//! for a password: it was visible until then, and stays in the shell's history.
//!
//! On Linux the kernel serves /proc/PID/cmdline from the bytes between the `arg_start` and
//! `arg_end` addresses of /proc/self/stat, which are the argument strings `execve` copied
//! onto the process's stack: writing there is what changes what others see.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// What mysql prints for a password on the command line.
pub const WARNING: &str = "Using a password on the command line interface can be insecure.";

/// A password in `argv`: the argument's index and the byte offset where the password starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordAt {
    pub arg: usize,
    pub offset: usize,
}

/// Where `argv` holds passwords, by the same rules as `args::mysql_style_password` and clap's
/// `--password`. A bare `-p` asks for the password instead: nothing to hide.
pub fn passwords(argv: &[OsString]) -> Vec<PasswordAt> {
    let mut found = Vec::new();
    for (i, a) in argv.iter().enumerate().skip(1) {
        let bytes = a.as_bytes();
        if bytes.len() > 2 && bytes.starts_with(b"-p") && !bytes.starts_with(b"--") {
            found.push(PasswordAt { arg: i, offset: 2 });
        } else if bytes.starts_with(b"--password=") && bytes.len() > "--password=".len() {
            found.push(PasswordAt { arg: i, offset: "--password=".len() });
        } else if bytes == b"--password" && argv.get(i + 1).is_some_and(|next| !next.is_empty()) {
            found.push(PasswordAt { arg: i + 1, offset: 0 });
        }
    }
    found
}

/// Overwrites every password in this process's argument memory; returns whether there was
/// one (to warn about). Must run before any other thread exists (main's first lines).
pub fn hide_passwords(argv: &[OsString]) -> bool {
    let found = passwords(argv);
    if found.is_empty() {
        return false;
    }
    if let Err(why) = overwrite(argv, &found) {
        eprintln!("floodgate: warning: the password stays visible in /proc/{}/cmdline: {why}", std::process::id());
    }
    true
}

fn overwrite(argv: &[OsString], found: &[PasswordAt]) -> Result<(), String> {
    let (start, end) = argument_area().ok_or("/proc/self/stat does not say where the arguments are")?;
    // Write only into an area that holds exactly the arguments std gave us, laid out as the
    // kernel does (each followed by a NUL): anything else (a wrapper that rewrote its
    // title, say) is not memory we know.
    let laid_out: Vec<u8> = argv.iter().flat_map(|a| a.as_bytes().iter().copied().chain([0])).collect();
    let cmdline = std::fs::read("/proc/self/cmdline").map_err(|e| format!("reading /proc/self/cmdline: {e}"))?;
    if cmdline != laid_out || end.checked_sub(start) != Some(laid_out.len()) {
        return Err("the argument memory is not laid out as expected".into());
    }
    for at in found {
        let arg_start: usize = argv[..at.arg].iter().map(|a| a.len() + 1).sum();
        let len = argv[at.arg].len() - at.offset;
        scrub(start + arg_start + at.offset, len);
    }
    Ok(())
}

/// `arg_start` and `arg_end`, fields 48 and 49 of /proc/self/stat (proc(5)). The command
/// name, field 2, is in parentheses and may hold spaces: count from the last `)`.
fn argument_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(48 - 3);
    let start = fields.next()?.parse().ok()?;
    let end = fields.next()?.parse().ok()?;
    Some((start, end))
}

/// Replaces `len` bytes at `address` by `x` and NULs, as mysql does (`-pSECRET` reads `-px`).
#[allow(unsafe_code)]
fn scrub(address: usize, len: usize) {
    for i in 0..len {
        let byte = if i == 0 { b'x' } else { 0 };
        // SAFETY: `overwrite` checked that [address, address + len) lies inside the argument
        // strings execve copied to this process's stack (the area /proc/self/stat names,
        // whose bytes /proc/self/cmdline showed equal to std's arguments): mapped, writable
        // and ours. No Rust value refers to these bytes (std keeps raw argv pointers and
        // copies the strings on each call), and no other thread runs yet. Volatile, because
        // only the kernel reads them back.
        unsafe { std::ptr::write_volatile((address + i) as *mut u8, byte) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn finds_each_spelling_of_a_password() {
        let a = argv(&["floodgate", "restore", "-pS1", "dir", "--password=S2", "--password", "S3", "-p", "-P", "1"]);
        assert_eq!(
            passwords(&a),
            vec![PasswordAt { arg: 2, offset: 2 }, PasswordAt { arg: 4, offset: 11 }, PasswordAt { arg: 6, offset: 0 },]
        );
    }

    #[test]
    fn a_bare_p_and_other_flags_hold_no_password() {
        assert!(passwords(&argv(&["floodgate", "-p", "--port=3306", "--password=", "-P", "3306"])).is_empty());
        // The program's own name is never a flag.
        assert!(passwords(&argv(&["-pwd"])).is_empty());
    }

    #[test]
    fn the_argument_area_is_found() {
        let (start, end) = argument_area().unwrap();
        let cmdline = std::fs::read("/proc/self/cmdline").unwrap();
        assert_eq!(end - start, cmdline.len());
    }
}
