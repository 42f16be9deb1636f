//! Boots the real kernel with an E1000 on QEMU's user network (always `restrict=on`: no packet
//! leaves this machine) and checks the NIC driver end to end.

mod common;

use common::{expect_poweroff, kernel, ok, BOOT, STEP};
use mkimage::console::{Console, TempDir};
use mkimage::qemu::{self, Network};

/// `selftest` with a NIC and no disk: the ARP check sends a hand-made request to the gateway
/// 10.0.2.2 and must get its reply through the receive interrupt.
#[test]
fn selftest_arps_the_gateway() {
    let mut opts = qemu::Options::new(kernel(), "selftest");
    opts.network = Network::user(vec![]);
    let args: Vec<String> =
        qemu::args(&opts).iter().map(|a| a.to_string_lossy().into_owned()).collect();
    assert!(args.iter().any(|a| a.starts_with("user,") && a.contains("restrict=on")), "{args:?}");
    let c = common::spawn_with(opts);
    ok(c.expect("net: e1000 at ", BOOT));
    ok(c.expect("selftest: disk skipped (no disk)", BOOT));
    ok(c.expect("selftest: net_arp ok (gateway 10.0.2.2 is at ", STEP));
    // TCP through the stack's loopback (127.0.0.1 and 10.0.2.15), refusal of a closed port.
    ok(c.expect("selftest: net_loopback ok", STEP));
    ok(c.expect("selftest: PASS", STEP));
    expect_poweroff(&c);
    let out = c.output();
    let line = out.lines().find(|l| l.starts_with("net: e1000 at ")).unwrap();
    assert!(line.contains(", mac 52:54:00:") && line.contains(", irq "), "{line}");
}

/// A disk and a NIC together: on `pc` both sit on interrupt line 11, so each handler must
/// leave the other's interrupts alone (a zero ICR is not ours) and both checks still pass.
#[test]
fn selftest_with_a_disk_and_a_nic_sharing_a_line() {
    let dir = ok(TempDir::new("rustix-net-disk"));
    let image = dir.path().join("disk.img");
    std::fs::File::create(&image).unwrap().set_len(8 << 20).unwrap();
    let mut opts = qemu::Options::new(kernel(), "selftest");
    opts.network = Network::user(vec![]);
    opts.disk = Some(image);
    let c = common::spawn_with(opts);
    ok(c.expect("selftest: disk ok", BOOT));
    ok(c.expect("selftest: net_arp ok", STEP));
    ok(c.expect("selftest: PASS", STEP));
    expect_poweroff(&c);
}

/// Without a NIC the check is skipped, and nothing else changes.
#[test]
fn selftest_without_a_nic_skips_the_network_check() {
    let c = ok(Console::spawn(kernel(), "selftest"));
    ok(c.expect("selftest: net_arp skipped (no nic)", BOOT));
    ok(c.expect("selftest: PASS", STEP));
    expect_poweroff(&c);
    assert!(!c.output().contains("net: e1000"));
}
