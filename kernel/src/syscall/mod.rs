//! System-call dispatch: the numbers of `abi::syscall::nr` to their handlers. Arguments come
//! from the frame's registers; every pointer among them is checked by `proc::uaccess`.
//!
//! Handlers run on the calling process's kernel stack with interrupts enabled; the ones that
//! wait do so through `proc::bridge` (the process sleeps, the rest of the system runs).

pub mod file;
pub mod net;
pub mod ns;
pub mod proc;

use crate::arch::trap::TrapFrame;
use crate::file::File;
use crate::mm::budget::IoBuf;
use abi::syscall::{nr, Errno};

/// Most bytes one piece of a `read`, `write`, `send` or `recv` moves through the kernel.
pub const CHUNK: usize = 64 * 1024;

/// The bounce buffer for `len` bytes of a transfer on `f` (between user memory, reached only
/// through `proc::uaccess`, and the file): up to [`CHUNK`], less (down to a page, a short
/// count) when the kernel-memory budget refuses that much (`mm::budget::IoBuf`). A datagram
/// must not be cut, so a UDP socket gets ENOMEM instead.
fn bounce(f: &File, len: usize) -> Result<IoBuf, Errno> {
    let len = len.min(CHUNK);
    if f.as_socket().is_some_and(|s| s.is_udp()) {
        IoBuf::exactly(len).ok_or(Errno::ENOMEM)
    } else {
        Ok(IoBuf::up_to(len))
    }
}

pub fn dispatch(frame: &mut TrapFrame) {
    x86_64::instructions::interrupts::enable();
    let a = [frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9];
    let ret: isize = match frame.rax as usize {
        nr::FORK => proc::sys_fork(frame),
        nr::EXIT => proc::sys_exit(&a),
        nr::WAIT => proc::sys_wait(&a),
        nr::KILL => proc::sys_kill(&a),
        nr::EXEC => proc::sys_exec(frame, &a),
        nr::GETPID => proc::sys_getpid(),
        nr::SBRK => proc::sys_sbrk(&a),
        nr::SLEEP => proc::sys_sleep(&a),
        nr::UPTIME => proc::sys_uptime(),
        nr::POWEROFF => proc::sys_poweroff(),
        nr::PIPE => file::sys_pipe(&a),
        nr::READ => file::sys_read(&a),
        nr::WRITE => file::sys_write(&a),
        nr::OPEN => file::sys_open(&a),
        nr::CLOSE => file::sys_close(&a),
        nr::DUP => file::sys_dup(&a),
        nr::FSTAT => file::sys_fstat(&a),
        nr::CHDIR => file::sys_chdir(&a),
        nr::MKNOD => file::sys_mknod(&a),
        nr::UNLINK => file::sys_unlink(&a),
        nr::LINK => file::sys_link(&a),
        nr::MKDIR => file::sys_mkdir(&a),
        nr::RENAME => file::sys_rename(&a),
        nr::GETCWD => file::sys_getcwd(&a),
        nr::SETFG => file::sys_setfg(&a),
        nr::SPAWN => ns::sys_spawn(frame, &a),
        nr::SPAWN2 => ns::sys_spawn2(frame, &a),
        nr::NSPCOPY => ns::sys_nspcopy(&a),
        nr::GETNS => ns::sys_getns(),
        nr::PUBLISH => ns::sys_publish(&a),
        nr::NSENTER => ns::sys_nsenter(frame, &a),
        nr::ATTACH => ns::sys_attach(&a),
        nr::SETPGID => proc::sys_setpgid(&a),
        nr::GETPGID => proc::sys_getpgid(&a),
        nr::SOCKET => net::sys_socket(&a),
        nr::BIND => net::sys_bind(&a),
        nr::LISTEN => net::sys_listen(&a),
        nr::ACCEPT => net::sys_accept(&a),
        nr::CONNECT => net::sys_connect(&a),
        nr::SEND => net::sys_send(&a),
        nr::RECV => net::sys_recv(&a),
        nr::SENDTO => net::sys_sendto(&a),
        nr::RECVFROM => net::sys_recvfrom(&a),
        nr::GETSOCKNAME => net::sys_getsockname(&a),
        nr::GETPEERNAME => net::sys_getpeername(&a),
        nr::SHUTDOWN => net::sys_shutdown(&a),
        nr::POLL => net::sys_poll(&a),
        nr::FCNTL => net::sys_fcntl(&a),
        nr::ARPING => net::sys_arping(&a),
        nr::SENDFILE => net::sys_sendfile(&a),
        _ => Errno::ENOSYS.ret(),
    };
    if frame.rax as usize != nr::EXEC || ret < 0 {
        frame.rax = ret as u64;
    }
    x86_64::instructions::interrupts::disable();
    crate::proc::exit_if_killed();
    crate::proc::sched::preempt_if_requested();
}
