//! The kernel's sampling profiler (`prof=HZ`, kernel/src/prof.rs) and `mkimage profile`'s
//! reading of it: samples land where the CPU is, user or kernel, and name real functions.

mod common;

use std::time::{Duration, Instant};

use common::{image_with_programs, kernel, run};
use mkimage::profile::{parse, Symbols};
use mkimage::qemu::Options;

/// `cat /proc/prof` until it has counted `at_least` samples (bounded by a deadline).
fn wait_for_samples(c: &mkimage::console::Console, at_least: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = run(c, "cat /proc/prof");
        if parse(&text).1 >= at_least {
            return text;
        }
        assert!(Instant::now() < deadline, "too few samples:\n{text}");
    }
}

#[test]
fn samples_name_the_kernel_functions_and_the_busy_user_program() {
    let (_dir, img) = image_with_programs("rustix-prof", &[]);
    let mut opts = Options::new(kernel(), "prof=2000");
    opts.disk = Some(img);
    let c = common::boot_to_shell(opts);
    assert!(c.output().contains("prof: sampling at 2000 Hz"), "{}", c.output());
    // An idle shell: the samples are the kernel's, and the idle loop's above all.
    let text = wait_for_samples(&c, 200);
    assert!(text.contains("\nhz 2000\nsamples "), "{text}");
    let (counts, samples) = parse(&text);
    assert_eq!(counts.values().sum::<u64>(), samples, "every sample in a line (few addresses)");
    let ksyms = Symbols::from_elf(&std::fs::read(kernel()).unwrap()).unwrap();
    let top = counts.iter().max_by_key(|(_, &n)| n).map(|(&a, _)| a).unwrap();
    assert!(top >= 0xffff_8000_0000_0000, "an idle machine's top address is the kernel's");
    let name = ksyms.name(top).unwrap_or_else(|| panic!("{top:#x} names no kernel function"));
    assert!(name.starts_with("kernel::"), "{name}");
    // A busy user program: most of the new samples are in user space.
    run(&c, "spin &");
    let before: u64 = parse(&text).1;
    let busy = wait_for_samples(&c, before + 2000);
    let (after, total) = parse(&busy);
    let user: u64 = after.iter().filter(|(&a, _)| a < 0x8000_0000_0000).map(|(_, &n)| n).sum();
    assert!(user * 2 > total - before, "{user} user samples of {}:\n{busy}", total - before);
    common::poweroff(c);
}

#[test]
fn without_prof_nothing_is_sampled() {
    let (_dir, img) = image_with_programs("rustix-noprof", &[]);
    let c = common::shell(&img);
    let text = run(&c, "cat /proc/prof");
    assert!(text.contains("hz 0\nsamples 0\nlost 0\n"), "{text}");
    assert!(text.contains("prof"), "{}", run(&c, "ls /proc"));
    common::poweroff(c);
}
