//! A running QEMU whose serial console and QMP socket a program (a test, `mkimage run`,
//! `mkimage bench-boot`) can drive.
//!
//! QEMU's stdin and stdout are the guest's COM1 (`-serial stdio`). Reader threads collect
//! stdout (the serial output) and stderr (QEMU's own messages) into a shared buffer; waits
//! ([`Console::expect`], [`Console::wait_exit`]) block on a condition variable with a deadline,
//! never on a fixed sleep. On timeout the error carries everything the guest printed.
//!
//! QEMU is killed (by its PID, through [`std::process::Child::kill`]) when the [`Console`] is
//! dropped, so a test that fails or panics does not leave it running; it also gets
//! `PR_SET_PDEATHSIG`, so it dies if the thread that started it dies without dropping it
//! (e.g. the test binary is killed). Keep a `Console` on the thread that spawned it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::qemu;

/// How to start a [`Console`].
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Open a QMP socket in a fresh temporary directory (needed for [`Console::qmp`]).
    pub qmp: bool,
    /// Also copy QEMU's stdout and stderr to this process's stdout and stderr as they arrive.
    pub echo: bool,
}

impl Default for Settings {
    /// QMP on, echo off: what tests want.
    fn default() -> Self {
        Settings { qmp: true, echo: false }
    }
}

#[derive(Default)]
struct State {
    serial: Vec<u8>,
    serial_eof: bool,
    stderr: Vec<u8>,
    stderr_eof: bool,
    /// Where the next [`Console::expect`] starts searching.
    cursor: usize,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader thread cannot panic while holding the lock; recover anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Serial,
    Stderr,
}

/// Where a reader thread also copies what it reads.
type Tee = Box<dyn Write + Send>;

/// Copies one of QEMU's output pipes into the shared state until end of file.
fn pump(mut src: impl Read, shared: Arc<Shared>, stream: Stream, mut tee: Option<Tee>) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => 0,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        if n > 0 {
            if let Some(out) = tee.as_mut() {
                // Echo failures (a closed terminal) must not stop the collection.
                let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
            }
        }
        let mut st = shared.lock();
        match stream {
            Stream::Serial => {
                st.serial.extend_from_slice(&buf[..n]);
                if n == 0 {
                    st.serial_eof = true;
                }
            }
            Stream::Stderr => {
                st.stderr.extend_from_slice(&buf[..n]);
                if n == 0 {
                    st.stderr_eof = true;
                }
            }
        }
        drop(st);
        shared.changed.notify_all();
        if n == 0 {
            return;
        }
    }
}

/// A fresh directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Result<TempDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = base.join(format!("{prefix}-{}-{n}-{nanos:x}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(format!("creating {}", path.display()), e)),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A QMP connection after the capabilities handshake.
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// How long one QMP answer may take.
const QMP_REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long QEMU may take to open its QMP socket.
const QMP_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Qmp {
    fn connect(path: &Path, deadline: Instant, shared: &Shared) -> Result<Qmp> {
        // QEMU creates the socket while it starts up; poll for it (bounded) until it accepts.
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) => {
                    if Instant::now() >= deadline || shared.lock().serial_eof {
                        return Err(Error::io(
                            format!("connecting to QMP socket {}", path.display()),
                            e,
                        ));
                    }
                    thread::sleep(Duration::from_millis(10));
                }
            }
        };
        stream
            .set_read_timeout(Some(QMP_REPLY_TIMEOUT))
            .map_err(|e| Error::io("setting QMP read timeout", e))?;
        let writer = stream.try_clone().map_err(|e| Error::io("cloning QMP socket", e))?;
        let mut qmp = Qmp { reader: BufReader::new(stream), writer };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(Error::Qmp(format!("unexpected greeting {greeting}")));
        }
        qmp.execute(&json!({ "execute": "qmp_capabilities" }))?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(|e| Error::io("reading from QMP", e))?;
        if n == 0 {
            return Err(Error::Qmp("QEMU closed the QMP connection".into()));
        }
        serde_json::from_str(&line).map_err(|e| Error::Qmp(format!("bad JSON {line:?}: {e}")))
    }

    /// Sends one command and returns its `return` value; events in between are skipped.
    fn execute(&mut self, command: &Value) -> Result<Value> {
        let mut text = command.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes()).map_err(|e| Error::io("writing to QMP", e))?;
        loop {
            let mut msg = self.read_message()?;
            if let Some(ret) = msg.get_mut("return") {
                return Ok(ret.take());
            }
            if let Some(err) = msg.get("error") {
                return Err(Error::Qmp(format!("{command} failed: {err}")));
            }
            // Asynchronous events ({"event": ...}) are not answers.
        }
    }
}

/// The QMP `send-key` qcodes that type `c` on a US keyboard, or `None` for a character we do
/// not map.
pub fn qcodes(c: char) -> Option<Vec<&'static str>> {
    const LETTERS: [&str; 26] = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
        "s", "t", "u", "v", "w", "x", "y", "z",
    ];
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    let key = match c {
        'a'..='z' => LETTERS[c as usize - 'a' as usize],
        'A'..='Z' => return Some(vec!["shift", LETTERS[c as usize - 'A' as usize]]),
        '0'..='9' => DIGITS[c as usize - '0' as usize],
        ' ' => "spc",
        '\n' => "ret",
        '\t' => "tab",
        '-' => "minus",
        '=' => "equal",
        '.' => "dot",
        ',' => "comma",
        '/' => "slash",
        ';' => "semicolon",
        '_' => return Some(vec!["shift", "minus"]),
        ':' => return Some(vec!["shift", "semicolon"]),
        _ => return None,
    };
    Some(vec![key])
}

/// A running QEMU with its serial console and, optionally, its QMP socket.
pub struct Console {
    child: Mutex<Child>,
    pid: u32,
    stdin: Mutex<Option<ChildStdin>>,
    shared: Arc<Shared>,
    qmp: Mutex<Option<Qmp>>,
    qmp_socket: Option<PathBuf>,
    /// Holds the QMP socket and `pmemsave` files; removed after QEMU is gone.
    temp: Option<TempDir>,
}

impl Console {
    /// Boots `kernel` with `cmdline`, no network, a QMP socket, serial output collected.
    pub fn spawn(kernel: impl Into<PathBuf>, cmdline: &str) -> Result<Console> {
        Self::spawn_with(qemu::Options::new(kernel, cmdline), Settings::default())
    }

    /// Starts QEMU with these options. With `settings.qmp`, the QMP socket is placed in a new
    /// temporary directory (replacing `opts.qmp_socket`).
    pub fn spawn_with(mut opts: qemu::Options, settings: Settings) -> Result<Console> {
        let temp = if settings.qmp {
            let dir = TempDir::new("mkimage")?;
            opts.qmp_socket = Some(dir.path().join("qmp.sock"));
            Some(dir)
        } else {
            None
        };
        Self::start(qemu::command(&opts), settings.echo, opts.qmp_socket, temp)
    }

    /// Starts `cmd` (QEMU, or a stand-in in unit tests) with piped stdio and reader threads.
    fn start(
        mut cmd: Command,
        echo: bool,
        qmp_socket: Option<PathBuf>,
        temp: Option<TempDir>,
    ) -> Result<Console> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let parent = std::process::id();
        // SAFETY: the closure runs in the child between fork and exec and only makes
        // async-signal-safe system calls (prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() as u32 != parent {
                    return Err(io::Error::other("parent exited before QEMU started"));
                }
                Ok(())
            });
        }
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("cannot start {program} (is it installed?)"), e))?;
        let pid = child.id();
        let shared = Arc::new(Shared::default());
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let stdin = child.stdin.take();
        // From here on, dropping the console kills the child.
        let console = Console {
            stdin: Mutex::new(stdin),
            child: Mutex::new(child),
            pid,
            shared: Arc::clone(&shared),
            qmp: Mutex::new(None),
            qmp_socket,
            temp,
        };
        let (out_tee, err_tee): (Option<Tee>, Option<Tee>) = if echo {
            (Some(Box::new(io::stdout())), Some(Box::new(io::stderr())))
        } else {
            (None, None)
        };
        // The threads end by themselves at end of file, once QEMU is gone; they are not joined
        // so that dropping a Console can never hang.
        let s = Arc::clone(&shared);
        thread::Builder::new()
            .name(format!("qemu-{pid}-serial"))
            .spawn(move || pump(stdout, s, Stream::Serial, out_tee))
            .map_err(|e| Error::io("starting serial reader thread", e))?;
        thread::Builder::new()
            .name(format!("qemu-{pid}-stderr"))
            .spawn(move || pump(stderr, shared, Stream::Stderr, err_tee))
            .map_err(|e| Error::io("starting stderr reader thread", e))?;
        Ok(console)
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The QMP socket, if there is one.
    pub fn qmp_socket(&self) -> Option<&Path> {
        self.qmp_socket.as_deref()
    }

    /// Everything the guest has printed on the serial console so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.shared.lock().serial).into_owned()
    }

    /// Everything QEMU has printed on its stderr so far.
    pub fn stderr_output(&self) -> String {
        String::from_utf8_lossy(&self.shared.lock().stderr).into_owned()
    }

    /// Waits until the serial output after the previous match contains `needle`; returns the
    /// text from there up to and including `needle`, and moves the search position past it.
    /// Fails at `deadline` (measured from now) or when QEMU exits first; the error holds the
    /// whole serial output.
    pub fn expect(&self, needle: &str, deadline: Duration) -> Result<String> {
        let n = needle.as_bytes();
        self.wait_for(&format!("{needle:?}"), deadline, |hay| {
            if n.is_empty() {
                return Some(0);
            }
            hay.windows(n.len()).position(|w| w == n).map(|i| i + n.len())
        })
    }

    /// Like [`Console::expect`] for a whole line equal to `line` (a trailing `\r` is ignored).
    pub fn expect_line(&self, line: &str, deadline: Duration) -> Result<String> {
        let want = line.as_bytes();
        self.wait_for(&format!("the line {line:?}"), deadline, |hay| {
            let mut start = 0;
            while let Some(nl) = hay[start..].iter().position(|&b| b == b'\n') {
                let mut l = &hay[start..start + nl];
                if let Some(stripped) = l.strip_suffix(b"\r") {
                    l = stripped;
                }
                if l == want {
                    return Some(start + nl + 1);
                }
                start += nl + 1;
            }
            None
        })
    }

    /// `matcher` gets the serial output after the cursor and returns where a match ends.
    fn wait_for(
        &self,
        what: &str,
        deadline: Duration,
        matcher: impl Fn(&[u8]) -> Option<usize>,
    ) -> Result<String> {
        let end = Instant::now().checked_add(deadline);
        let mut st = self.shared.lock();
        loop {
            let cursor = st.cursor;
            if let Some(len) = matcher(&st.serial[cursor..]) {
                let text = String::from_utf8_lossy(&st.serial[cursor..cursor + len]).into_owned();
                st.cursor += len;
                return Ok(text);
            }
            if st.serial_eof {
                drop(st);
                let status = self.wait_exit(Duration::from_secs(5)).ok();
                let st = self.shared.lock();
                return Err(Error::Exited {
                    waiting_for: what.to_string(),
                    status,
                    serial: String::from_utf8_lossy(&st.serial).into_owned(),
                    stderr: String::from_utf8_lossy(&st.stderr).into_owned(),
                });
            }
            st = match end {
                None => self.shared.changed.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(end) => {
                    let now = Instant::now();
                    if now >= end {
                        return Err(self.timeout(what, deadline, &st));
                    }
                    self.shared
                        .changed
                        .wait_timeout(st, end - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    fn timeout(&self, what: &str, after: Duration, st: &State) -> Error {
        Error::Timeout {
            waiting_for: what.to_string(),
            after,
            serial: String::from_utf8_lossy(&st.serial).into_owned(),
            stderr: String::from_utf8_lossy(&st.stderr).into_owned(),
        }
    }

    /// Writes bytes to the guest's serial port.
    pub fn send(&self, bytes: impl AsRef<[u8]>) -> Result<()> {
        let mut stdin = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let pipe = stdin.as_mut().ok_or_else(|| Error::Other("QEMU's stdin is closed".into()))?;
        pipe.write_all(bytes.as_ref())
            .and_then(|()| pipe.flush())
            .map_err(|e| Error::io("writing to QEMU's serial port", e))
    }

    /// Closes QEMU's stdin (the guest sees no more serial input).
    pub fn close_stdin(&self) {
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Runs one QMP command, e.g. `json!({"execute": "query-status"})`, and returns its
    /// `return` value. The first call connects and does the capabilities handshake.
    pub fn qmp(&self, command: Value) -> Result<Value> {
        let path = self
            .qmp_socket
            .as_deref()
            .ok_or_else(|| Error::Qmp("this console was started without QMP".into()))?;
        let mut conn = self.qmp.lock().unwrap_or_else(|e| e.into_inner());
        if conn.is_none() {
            let deadline = Instant::now() + QMP_CONNECT_TIMEOUT;
            *conn = Some(Qmp::connect(path, deadline, &self.shared)?);
        }
        let result = conn.as_mut().expect("connected").execute(&command);
        if matches!(result, Err(Error::Io { .. })) {
            // The connection is unusable; reconnect next time.
            *conn = None;
        }
        result
    }

    /// Runs a human monitor command (e.g. `info registers`) through QMP and returns its text.
    pub fn hmp(&self, command_line: &str) -> Result<String> {
        let ret = self.qmp(json!({
            "execute": "human-monitor-command",
            "arguments": { "command-line": command_line },
        }))?;
        ret.as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Qmp(format!("human-monitor-command returned {ret}")))
    }

    /// Types `text` on the guest's PS/2 keyboard with QMP `send-key`, one key (with shift for
    /// capitals) at a time. Letters, digits, space, newline, tab and a few punctuation marks are
    /// mapped (see [`qcodes`]); anything else is an error and nothing is typed.
    pub fn send_keys(&self, text: &str) -> Result<()> {
        let mut all = Vec::new();
        for c in text.chars() {
            let keys =
                qcodes(c).ok_or_else(|| Error::Other(format!("send_keys: no key for {c:?}")))?;
            all.push(keys);
        }
        for keys in all {
            let keys: Vec<Value> =
                keys.into_iter().map(|k| json!({ "type": "qcode", "data": k })).collect();
            self.qmp(json!({ "execute": "send-key", "arguments": { "keys": keys } }))?;
        }
        Ok(())
    }

    /// Reads `len` bytes of guest physical memory at `addr` (QMP `pmemsave` into the
    /// console's temporary directory).
    pub fn read_guest_phys(&self, addr: u64, len: u64) -> Result<Vec<u8>> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = self
            .temp
            .as_ref()
            .ok_or_else(|| Error::Qmp("this console was started without QMP".into()))?;
        let file = dir.path().join(format!("pmem-{}.bin", COUNTER.fetch_add(1, Ordering::Relaxed)));
        self.qmp(json!({
            "execute": "pmemsave",
            "arguments": { "val": addr, "size": len, "filename": file.to_string_lossy() },
        }))?;
        let data = std::fs::read(&file)
            .map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
        let _ = std::fs::remove_file(&file);
        Ok(data)
    }

    /// Waits for QEMU to exit (its stdout and stderr end, then the process is reaped), at most
    /// `deadline` from now. Afterwards [`Console::output`] and [`Console::stderr_output`] are
    /// complete. QEMU is left running on timeout (dropping the console kills it).
    pub fn wait_exit(&self, deadline: Duration) -> Result<ExitStatus> {
        let end = Instant::now().checked_add(deadline);
        let remaining =
            |end: Option<Instant>| end.map(|e| e.saturating_duration_since(Instant::now()));
        {
            let mut st = self.shared.lock();
            while !(st.serial_eof && st.stderr_eof) {
                st = match remaining(end) {
                    None => self.shared.changed.wait(st).unwrap_or_else(|e| e.into_inner()),
                    Some(left) if left.is_zero() => {
                        return Err(self.timeout("QEMU to exit", deadline, &st));
                    }
                    Some(left) => {
                        self.shared
                            .changed
                            .wait_timeout(st, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    }
                };
            }
        }
        // Its output is closed: QEMU is exiting. Reap it (polling: a process exit has no condvar).
        loop {
            let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(status) = child.try_wait().map_err(|e| Error::io("waiting for QEMU", e))? {
                return Ok(status);
            }
            drop(child);
            match remaining(end) {
                Some(left) if left.is_zero() => {
                    let st = self.shared.lock();
                    return Err(self.timeout("QEMU to exit", deadline, &st));
                }
                Some(left) => thread::sleep(left.min(Duration::from_millis(5))),
                None => thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Kills QEMU (by its PID) if it is still running, reaps it, and waits (briefly) for the
    /// readers to drain its pipes: afterwards [`Console::output`] holds everything QEMU wrote
    /// before it died. (Without that wait, the last lines could still be in the pipe: the
    /// crash test read a commit count one or two short of what reached the disk.)
    pub fn kill(&self) {
        {
            let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // The pipes close with the process; a failure here only means output may be short.
        let _ = self.wait_exit(Duration::from_secs(10));
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.close_stdin();
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_mapping() {
        assert_eq!(qcodes('h'), Some(vec!["h"]));
        assert_eq!(qcodes('H'), Some(vec!["shift", "h"]));
        assert_eq!(qcodes('7'), Some(vec!["7"]));
        assert_eq!(qcodes(' '), Some(vec!["spc"]));
        assert_eq!(qcodes('\n'), Some(vec!["ret"]));
        assert_eq!(qcodes('='), Some(vec!["equal"]));
        assert_eq!(qcodes('é'), None);
        for c in ('a'..='z').chain('A'..='Z').chain('0'..='9') {
            assert!(qcodes(c).is_some(), "{c}");
        }
    }

    /// A stand-in for QEMU: a shell script on the console's pipes.
    fn shell(script: &str) -> Console {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        Console::start(cmd, false, None, None).unwrap()
    }

    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn expect_send_and_exit_status() {
        let c = shell(
            "echo 'rustix-kernel 0.1'; printf 'ready\\r\\n'; read line; echo \"echo: $line\"; \
             echo oops >&2; exit 3",
        );
        assert_eq!(c.expect("rustix", LONG).unwrap(), "rustix");
        c.expect_line("ready", LONG).unwrap();
        c.send("hello world\n").unwrap();
        c.expect("echo: hello world", LONG).unwrap();
        let status = c.wait_exit(LONG).unwrap();
        assert_eq!(qemu::Outcome::from_status(status), qemu::Outcome::KernelCrashed);
        assert!(c.output().starts_with("rustix-kernel 0.1\nready\r\n"));
        assert_eq!(c.stderr_output(), "oops\n");
    }

    #[test]
    fn expect_moves_past_each_match() {
        let c = shell("echo one two one; echo three");
        c.expect("one", LONG).unwrap();
        assert_eq!(c.expect("one", LONG).unwrap(), " two one");
        // "ready" inside a line is not the line "ready".
        let c2 = shell("echo not ready; echo ready; exec sleep 30");
        assert_eq!(c2.expect_line("ready", LONG).unwrap(), "not ready\nready\n");
        assert!(c.wait_exit(LONG).unwrap().success());
    }

    #[test]
    fn timeout_reports_all_output() {
        let c = shell("echo first line; echo second line; exec sleep 30");
        c.expect("second", LONG).unwrap();
        let start = Instant::now();
        let err = c.expect("never printed", Duration::from_millis(300)).unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("\"never printed\""), "{text}");
        assert!(text.contains("first line\nsecond line\n"), "{text}");
        assert!(matches!(c.wait_exit(Duration::from_millis(100)), Err(Error::Timeout { .. })));
    }

    #[test]
    fn exit_while_waiting_fails_at_once() {
        let c = shell("echo bye; exit 5");
        let start = Instant::now();
        let err = c.expect("never printed", LONG).unwrap_err();
        assert!(start.elapsed() < LONG);
        match &err {
            Error::Exited { status, serial, .. } => {
                assert_eq!(status.and_then(|s| s.code()), Some(5));
                assert_eq!(serial, "bye\n");
            }
            other => panic!("expected Exited, got {other}"),
        }
    }

    #[test]
    fn drop_kills_the_child() {
        let c = shell("echo up; exec sleep 1000");
        c.expect("up", LONG).unwrap();
        let proc_dir = PathBuf::from(format!("/proc/{}", c.pid()));
        assert!(proc_dir.exists());
        drop(c);
        // Reaped by Drop: the PID no longer names our child (it could only be reused).
        let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        assert!(!stat.contains("(sleep)"), "{stat}");
    }

    #[test]
    fn send_after_close_fails() {
        let c = shell("exec sleep 1000");
        c.close_stdin();
        assert!(c.send("x").is_err());
        assert!(matches!(c.qmp(json!({"execute": "query-status"})), Err(Error::Qmp(_))));
    }

    /// The QMP side against a real QEMU running only its BIOS (no kernel needed).
    #[test]
    fn qmp_against_bios_only_qemu() {
        let dir = TempDir::new("mkimage-unit").unwrap();
        let sock = dir.path().join("qmp.sock");
        let mut cmd = Command::new(qemu::QEMU);
        cmd.args([
            "-machine",
            "pc",
            "-m",
            "64M",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-nic",
            "none",
            "-no-reboot",
            "-qmp",
        ]);
        cmd.arg(format!("unix:{},server=on,wait=off", sock.display()));
        let c = Console::start(cmd, false, Some(sock), Some(dir)).unwrap();
        let status = c.qmp(json!({"execute": "query-status"})).unwrap();
        assert_eq!(status["status"], "running", "{status}");
        let info = c.hmp("info status").unwrap();
        assert!(info.contains("running"), "{info}");
        c.send_keys("Hello 1\n").unwrap();
        assert!(c.send_keys("é").is_err());
        let mem = c.read_guest_phys(0xb8000, 4000).unwrap();
        assert_eq!(mem.len(), 4000);
        let err = c.qmp(json!({"execute": "no-such-command"})).unwrap_err();
        assert!(err.to_string().contains("no-such-command"), "{err}");
        c.qmp(json!({"execute": "quit"})).unwrap();
        assert!(c.wait_exit(LONG).unwrap().success());
    }

    #[test]
    fn temp_dirs_are_unique_and_removed() {
        let a = TempDir::new("mkimage-test").unwrap();
        let b = TempDir::new("mkimage-test").unwrap();
        assert_ne!(a.path(), b.path());
        let p = a.path().to_path_buf();
        assert!(p.is_dir());
        drop(a);
        assert!(!p.exists());
    }
}
