//! sh: the shell.
//!
//! `sh` reads commands from standard input, printing the prompt `$ ` when that is the console (a
//! device; `ns<ID>$ ` inside a container); `sh FILE` reads them from FILE; `sh -c 'COMMANDS'` runs
//! one line. The language (`uparse::shell`): words and quotes, pipelines of any length with `|`,
//! `<`, `>` and `>>`, `&` for the background (the pid is printed), `;` and newlines between
//! commands, `#` comments. Built in: `cd [DIR]` (default `/`), `exit [STATUS]`, `wait` (for every
//! background job).
//!
//! Job control, in an interactive shell only (reading the console; `sh -c` and scripts leave
//! their commands in their own group, so ^C ends the whole script): each pipeline is a process
//! group of its own, led by its first command (`setpgid` in the parent and in the child, so the
//! group exists whichever of them runs first). A foreground pipeline's group is made the
//! console's foreground (`setfg`) by each child before it runs its program, and by the parent,
//! so ^C ends all of it and not the shell; the shell takes the foreground back after (none: ^C
//! at the prompt is an empty line). The exit status of the shell is that of the last command.

#![no_std]
#![no_main]

use ulib::abi::syscall::kind;
use ulib::io::{STDIN, STDOUT};
use ulib::prelude::*;
use ulib::uparse::shell::{self, Command, Pipeline};

ulib::entry!(main);

/// The status of a command that could not be started.
const NOT_FOUND: i32 = 127;

struct Shell {
    /// Each pipeline in a process group of its own, the foreground one the console's.
    job_control: bool,
    /// Background jobs not yet reaped.
    background: Vec<Pid>,
    /// The status of the last foreground command.
    status: i32,
}

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let mut sh = Shell { job_control: false, background: Vec::new(), status: 0 };
    match argv.get(1).copied() {
        Some("-c") => {
            let Some(line) = argv.get(2) else { die!("-c needs a command") };
            sh.run_line(line);
            sh.status
        }
        Some(path) => match File::open(path, sys::RDONLY) {
            Ok(f) => sh.run_fd(f.fd(), false),
            Err(e) => die!("{path}: {}", e.message()),
        },
        None => {
            let interactive = sys::fstat(STDIN).is_ok_and(|st| st.kind == kind::DEVICE);
            sh.job_control = interactive;
            sh.run_fd(STDIN, interactive)
        }
    }
}

impl Shell {
    /// Runs the lines of `fd` until end of file or `exit`.
    fn run_fd(&mut self, fd: Fd, prompt: bool) -> i32 {
        let mut line = Vec::new();
        // Inside a container the prompt names it: `ns2$ `.
        let prompt_text = match sys::getns() {
            sys::ns::ROOT => String::from("$ "),
            id => format!("ns{id}$ "),
        };
        loop {
            if prompt {
                print!("{prompt_text}");
            }
            line.clear();
            match read_line(fd, &mut line) {
                Ok(false) => return self.status,
                Ok(true) => {}
                Err(e) => die!("reading commands: {}", e.message()),
            }
            match core::str::from_utf8(&line) {
                Ok(text) => self.run_line(text),
                Err(_) => eprintln!("sh: the line is not UTF-8"),
            }
        }
    }

    fn run_line(&mut self, line: &str) {
        let list = match shell::parse(line) {
            Ok(list) => list,
            Err(e) => {
                eprintln!("sh: {e}");
                self.status = 2;
                return;
            }
        };
        for pipeline in &list {
            self.run_pipeline(pipeline);
        }
    }

    fn run_pipeline(&mut self, p: &Pipeline) {
        if let [cmd] = p.commands.as_slice() {
            if let Some(status) = self.builtin(cmd) {
                self.status = status;
                return;
            }
        }
        let jobs = self.job_control.then_some(Job { foreground: !p.background });
        let pids = match spawn_pipeline(p, jobs) {
            Ok(pids) if !pids.is_empty() => pids,
            Ok(_) => return,
            Err(e) => {
                eprintln!("sh: {}", e.message());
                self.status = NOT_FOUND;
                return;
            }
        };
        let last = *pids.last().unwrap_or(&0);
        if p.background {
            println!("[{last}]");
            self.background.extend_from_slice(&pids);
            return;
        }
        if jobs.is_some() {
            // The pipeline's group (its first command's pid) is what ^C ends (its children set
            // it too; failing, the group is gone already).
            let _ = sys::setfg(pids[0]);
        }
        self.status = self.wait_for(&pids, last);
        if jobs.is_some() {
            let _ = sys::setfg(0);
        }
    }

    /// Waits until every process of `pids` has exited; the status of `last`. Background jobs
    /// that end meanwhile are reaped and reported.
    fn wait_for(&mut self, pids: &[Pid], last: Pid) -> i32 {
        let mut left: Vec<Pid> = pids.to_vec();
        let mut status = 0;
        while !left.is_empty() {
            match sys::wait() {
                Ok((pid, st)) => {
                    if let Some(i) = left.iter().position(|&p| p == pid) {
                        left.remove(i);
                        if pid == last {
                            status = st;
                        }
                    } else {
                        self.reaped_background(pid, st);
                    }
                }
                Err(_) => break, // ECHILD: nothing left to wait for
            }
        }
        status
    }

    fn reaped_background(&mut self, pid: Pid, status: i32) {
        if let Some(i) = self.background.iter().position(|&p| p == pid) {
            self.background.swap_remove(i);
            println!("[{pid}] done, status {status}");
        }
    }

    /// Runs a built-in command; `None` when `cmd` is not one.
    fn builtin(&mut self, cmd: &Command) -> Option<i32> {
        let argv: Vec<&str> = cmd.argv.iter().map(String::as_str).collect();
        match argv.as_slice() {
            ["cd"] | ["cd", _] => {
                let dir = argv.get(1).copied().unwrap_or("/");
                Some(match sys::chdir(dir) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("cd: {dir}: {}", e.message());
                        1
                    }
                })
            }
            ["cd", ..] => {
                eprintln!("cd: too many arguments");
                Some(1)
            }
            ["exit"] => sys::exit(self.status),
            ["exit", code] => match code.parse::<i32>() {
                Ok(c) => sys::exit(c),
                Err(_) => {
                    eprintln!("exit: {code}: not a number");
                    Some(2)
                }
            },
            ["wait"] => {
                while !self.background.is_empty() {
                    match sys::wait() {
                        Ok((pid, st)) => self.reaped_background(pid, st),
                        Err(_) => self.background.clear(),
                    }
                }
                Some(0)
            }
            _ => None,
        }
    }
}

/// Reads one line a byte at a time, so that nothing after its newline is taken from a
/// descriptor that the commands share; `Ok(false)` at end of input.
fn read_line(fd: Fd, line: &mut Vec<u8>) -> sys::Result<bool> {
    let mut b = [0u8; 1];
    loop {
        match sys::read(fd, &mut b) {
            Ok(0) => return Ok(!line.is_empty()),
            Ok(_) => {
                line.push(b[0]);
                if b[0] == b'\n' {
                    return Ok(true);
                }
            }
            // ^C at the prompt (a killed read) just gives a new prompt.
            Err(Errno::EINTR) => {
                line.clear();
                return Ok(true);
            }
            Err(e) => return Err(e),
        }
    }
}

/// How a pipeline is started under job control.
#[derive(Clone, Copy)]
struct Job {
    /// Its group becomes the console's foreground.
    foreground: bool,
}

/// Starts every command of the pipeline, each reading the pipe from the one before; their
/// pids in order. A command that cannot be started reports it and exits 127 on its own. With
/// `jobs`, the commands are a process group of their own, led by the first.
fn spawn_pipeline(p: &Pipeline, jobs: Option<Job>) -> sys::Result<Vec<Pid>> {
    let mut pids = Vec::with_capacity(p.commands.len());
    // The read end of the previous command's pipe.
    let mut prev: Option<Fd> = None;
    let n = p.commands.len();
    let mut result = Ok(());
    for (i, cmd) in p.commands.iter().enumerate() {
        let next = if i + 1 < n {
            match sys::pipe() {
                Ok(fds) => Some(fds),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        } else {
            None
        };
        // The pipeline's group: the first command's pid (0 for the first: a new group).
        let pgid = pids.first().copied().unwrap_or(0);
        match sys::fork() {
            Ok(0) => {
                // Before exec: the child is in its group, the console's foreground, before it
                // runs anything (^C typed once it printed reaches the whole pipeline). EPERM
                // only if the group is gone, every member exited: stay in the shell's.
                if let Some(job) = jobs {
                    let own = if pgid == 0 { sys::getpid() } else { pgid };
                    if sys::setpgid(0, own).is_ok() && job.foreground {
                        let _ = sys::setfg(own);
                    }
                }
                if let Some((r, w)) = next {
                    let _ = sys::close(r);
                    move_fd(w, STDOUT);
                }
                if let Some(r) = prev {
                    move_fd(r, STDIN);
                }
                run_command(cmd)
            }
            Ok(pid) => {
                // Also here: the parent's next fork and `setfg` find the group made already,
                // whichever of parent and child ran first. (EACCES after exec does not exist
                // here; a child already in its group gets Ok.)
                if jobs.is_some() {
                    let _ = sys::setpgid(pid, if pgid == 0 { pid } else { pgid });
                }
                pids.push(pid);
            }
            Err(e) => {
                result = Err(e);
                if let Some((r, w)) = next {
                    let _ = sys::close(r);
                    let _ = sys::close(w);
                }
                break;
            }
        }
        if let Some(r) = prev.take() {
            let _ = sys::close(r);
        }
        if let Some((r, w)) = next {
            let _ = sys::close(w);
            prev = Some(r);
        }
    }
    if let Some(r) = prev {
        let _ = sys::close(r);
    }
    match result {
        Ok(()) => Ok(pids),
        // Some processes started: they see end of file or a broken pipe and end; reap them.
        Err(e) => {
            for _ in &pids {
                let _ = sys::wait();
            }
            Err(e)
        }
    }
}

/// Makes `fd` known as `target` (closing `fd`), with `close` and `dup` only: `dup` returns the
/// lowest free descriptor, which is `target` once it is closed.
fn move_fd(fd: Fd, target: Fd) {
    if fd == target {
        return;
    }
    let _ = sys::close(target);
    match sys::dup(fd) {
        Ok(new) if new == target => {}
        Ok(new) => {
            eprintln!("sh: dup gave descriptor {new}, not {target}");
            sys::exit(NOT_FOUND);
        }
        Err(e) => {
            eprintln!("sh: dup: {}", e.message());
            sys::exit(NOT_FOUND);
        }
    }
    let _ = sys::close(fd);
}

/// In the child: redirections, then exec. Never returns.
fn run_command(cmd: &Command) -> ! {
    if let Some(path) = &cmd.input {
        match sys::open(path, sys::RDONLY) {
            Ok(fd) => move_fd(fd, STDIN),
            Err(e) => fail(path, e),
        }
    }
    if let Some(out) = &cmd.output {
        let mode = if out.append { sys::APPEND } else { sys::TRUNC };
        match sys::open(&out.path, sys::WRONLY | sys::CREATE | mode) {
            Ok(fd) => move_fd(fd, STDOUT),
            Err(e) => fail(&out.path, e),
        }
    }
    let argv: Vec<&str> = cmd.argv.iter().map(String::as_str).collect();
    let e = sys::exec(argv[0], &argv);
    fail(argv[0], e)
}

fn fail(what: &str, e: Errno) -> ! {
    eprintln!("sh: {what}: {}", e.message());
    sys::exit(NOT_FOUND)
}
