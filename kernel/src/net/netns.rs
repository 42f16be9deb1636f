//! Network namespaces: the registry of stacks by namespace id, their creation at
//! `spawn(NEWNET)` and teardown when the namespace retires, the published ports, and the
//! network's `/proc` files.
//!
//! - The root's stack (id 1) is made at boot when there is a NIC ([`start`]); without one
//!   there is no network at all, and a network namespace gets no stack either (its sockets
//!   fail with `ENETUNREACH`, as the root's do).
//! - [`create`] (at `spawn(NEWNET)`, from the caller's system call) charges and makes the
//!   namespace's stack (`192.168.1.<id>`), plugs its port into the bridge and starts its task.
//! - [`destroy`] (from `ns::retire`, when the namespace's last reference goes): every TCP
//!   connection is reset and the resets are sent (through the bridge, and for published ports
//!   on through the root's router to the wire), its published ports are freed in the root (a
//!   new container may publish them at once), its port is unplugged, every socket and its
//!   charge freed, and its task ends. A socket file still naming the stack (none should: only
//!   members hold them) finds it gone (`ENETUNREACH`).
//! - A socket belongs to the stack of the namespace it was made in, for its whole life
//!   (`socket::Socket` holds the `Arc`): [`current`] is only asked at `socket()`.
//!
//! # Locks
//! [`STACKS`] (rank `NetStacks`) is a leaf lock under which only the heap is taken; it is
//! never held while a stack's lock is taken. [`destroy`] and [`publish`] take the dying
//! stack's lock and the root's one after the other, never one inside the other.

use super::nat::{self, Proto, Published};
use super::stack::{NetStack, Stack, DEFAULT_GW, DEFAULT_IP, DEFAULT_PREFIX, STACK_CHARGE};
use crate::kprintln;
use crate::mm::budget::Charge;
use crate::net::e1000::MacFmt;
use crate::ns::{Namespace, NsSet};
use abi::syscall::ns::ROOT;
use abi::syscall::Errno;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;
use runtime::lockorder::{Mutex, Rank};

/// The live stacks by namespace id.
static STACKS: Mutex<BTreeMap<u32, Arc<NetStack>>> = Mutex::new(Rank::NetStacks, BTreeMap::new());

/// Start the root's stack and its task if there is a NIC. `ip`: address and prefix length.
pub fn start(ip: Option<([u8; 4], u8)>, gw: Option<[u8; 4]>) {
    let Some(cards) = super::e1000::cards() else { return };
    let (ip, prefix) = ip.unwrap_or((DEFAULT_IP, DEFAULT_PREFIX));
    let gw = gw.unwrap_or(DEFAULT_GW);
    let net = NetStack::root(cards, ip, prefix, gw);
    STACKS.lock().insert(ROOT, net.clone());
    net.start();
    let [a, b, c, d] = ip;
    let [e, f, g, h] = gw;
    kprintln!(
        "net: {a}.{b}.{c}.{d}/{prefix} gateway {e}.{f}.{g}.{h}; containers on 192.168.1.0/24"
    );
}

/// Namespace `id`'s stack (`None`: it has none, or no network exists).
pub fn of(id: u32) -> Option<Arc<NetStack>> {
    STACKS.lock().get(&id).cloned()
}

/// The root's stack (`None`: the machine has no network).
pub fn root() -> Option<Arc<NetStack>> {
    of(ROOT)
}

/// The stack of the calling process's network namespace.
pub fn current() -> Option<Arc<NetStack>> {
    of(crate::proc::current().ns.net.id)
}

/// Make namespace `id`'s stack (it isolates the network): nothing when the machine has no
/// network. Its memory is charged to the namespace's own `account` (and those above it):
/// `ENOMEM` when the kernel-memory budget or one of their memory limits refuses it.
pub fn create(id: u32, account: &Arc<crate::ns::Account>) -> Result<(), Errno> {
    if root().is_none() {
        return Ok(());
    }
    let charge = Charge::new_in(Some(account.clone()), STACK_CHARGE).map_err(|_| Errno::ENOMEM)?;
    let net = NetStack::container(id, charge);
    STACKS.lock().insert(id, net.clone());
    net.start();
    Ok(())
}

/// Tear down namespace `id`'s stack (see the module docs); nothing if it has none.
pub fn destroy(id: u32) {
    let Some(net) = STACKS.lock().remove(&id) else { return };
    // Its connections are reset: the resets wait in the root's bridge port queue, and for a
    // published port they must go out through the router before the port is unpublished.
    net.with(Stack::reset_all);
    if let Some(root) = root().filter(|_| id != ROOT) {
        root.with(|s| {
            s.poll();
            s.unpublish(id);
        });
        // Its task recomputes its timers after the poll made here.
        root.kick();
    }
    net.end();
}

/// Publish `host_port` of the wire to namespace `ns`'s `port` (the caller checked who may).
pub fn publish(p: Published) -> Result<(), Errno> {
    let root = root().ok_or(Errno::ENETUNREACH)?;
    if of(p.ns).is_none() {
        return Err(Errno::ENETUNREACH);
    }
    root.with(|s| s.publish(p)).ok_or(Errno::ENETUNREACH)?
}

/// Every published port.
pub fn published() -> Vec<Published> {
    root().and_then(|r| r.with(|s| s.published())).unwrap_or_default()
}

/// `a.b.c.d`.
fn ip4(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// The `addr ports` columns of `ns`'s line in `/proc/ns` for a process of `viewer` (see
/// `abi::syscall::ns::PROC_PATH`): host ports only for a viewer in the root's network.
pub fn ns_columns(ns: &Namespace, viewer: &NsSet, published: &[Published]) -> String {
    let addr = match ns.kinds.net() {
        true => ip4(nat::container_ip(ns.id)),
        false => String::from("-"),
    };
    let ports: Vec<String> = published
        .iter()
        .filter(|p| p.ns == ns.id)
        .map(|p| match viewer.net.id == ROOT {
            true => format!("{}:{}/{}", p.host_port, p.port, p.proto.name()),
            false => format!("{}/{}", p.port, p.proto.name()),
        })
        .collect();
    match ports.is_empty() {
        true => format!("{addr} -"),
        false => format!("{addr} {}", ports.join(",")),
    }
}

/// The text of `/proc/net`: the sockets of `viewer`'s network namespace.
pub fn proc_net(viewer: &NsSet) -> Vec<u8> {
    let mut out = String::new();
    if let Some(net) = of(viewer.net.id) {
        net.with(|s| super::socket::socket_lines(s, "", &mut out));
    }
    out.into_bytes()
}

/// The text of `/proc/netall`: the sockets of `viewer`'s network namespace and of every
/// network namespace below its own, each line after the namespace's id.
pub fn proc_netall(viewer: &NsSet) -> Vec<u8> {
    let mut ids: Vec<u32> = crate::ns::all()
        .iter()
        .filter(|ns| ns.kinds.net() && ns.id != viewer.net.id && ns.is_below(&viewer.home))
        .map(|ns| ns.id)
        .collect();
    ids.sort_unstable();
    ids.insert(0, viewer.net.id);
    let mut out = String::new();
    for id in ids {
        if let Some(net) = of(id) {
            net.with(|s| super::socket::socket_lines(s, &format!("{id} "), &mut out));
        }
    }
    out.into_bytes()
}

/// The text of `/proc/ifaces`: `name mac addr/prefix` for each interface of `viewer`'s
/// network namespace.
pub fn proc_ifaces(viewer: &NsSet) -> Vec<u8> {
    let mut out = String::new();
    if let Some(net) = of(viewer.net.id) {
        for i in &net.ifaces {
            let _ = writeln!(out, "{} {} {}/{}", i.name, MacFmt(i.mac), ip4(i.addr), i.prefix);
        }
    }
    out.into_bytes()
}

/// A `publish` protocol: `net::SOCK_STREAM` is TCP, `net::SOCK_DGRAM` UDP.
pub fn proto_of(sock_type: u64) -> Option<Proto> {
    match usize::try_from(sock_type).ok()? {
        abi::syscall::net::SOCK_STREAM => Some(Proto::Tcp),
        abi::syscall::net::SOCK_DGRAM => Some(Proto::Udp),
        _ => None,
    }
}
