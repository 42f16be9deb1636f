//! The kernel's sampling profiler (`prof=HZ`, kernel/src/prof.rs) and `mkimage profile`'s
//! reading of it: samples land where the CPU is, user or kernel, and name real functions.

mod common;

use std::time::{Duration, Instant};

use common::{image_with_programs, kernel, ok, run};
use mkimage::profile::{around, by_function, parse, Symbols};
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

/// The samples of what `workload` did (`mkimage::profile::around`), named by function.
fn profile_of(c: &mkimage::console::Console, workload: &str, user: &Symbols) -> Vec<(f64, String)> {
    let (before, after, ()) = ok(around(c, || {
        run(c, workload);
        Ok(())
    }));
    let ksyms = Symbols::from_elf(&std::fs::read(kernel()).unwrap()).unwrap();
    let (funcs, samples) = by_function(&before, &after, &ksyms, user);
    assert!(samples >= 100, "{samples} samples for `{workload}`:\n{before}\n{after}");
    funcs
}

#[test]
fn samples_name_the_kernel_functions_and_the_busy_user_program() {
    let (_dir, img) = image_with_programs("rustix-prof", &[]);
    let mut opts = Options::new(kernel(), "prof=2000");
    opts.disk = Some(img);
    let c = common::boot_to_shell(opts);
    assert!(c.output().contains("prof: sampling at 2000 Hz"), "{}", c.output());
    let text = wait_for_samples(&c, 200);
    assert!(text.contains("\nhz 2000\nsamples "), "{text}");
    let (counts, samples) = parse(&text);
    assert_eq!(counts.values().sum::<u64>(), samples, "every sample in a line (few addresses)");
    // Idle: the scheduler's idle loop, in the kernel, above everything.
    let spin_syms = Symbols::from_elf(&spin_elf()).unwrap();
    let idle = profile_of(&c, "sleep 500ms", &spin_syms);
    assert!(idle[0].1 == "k kernel::proc::sched::run" && idle[0].0 > 0.5, "{idle:?}");
    // A busy user program (in the background, the shell waiting): mostly its own loop.
    run(&c, "spin &");
    let busy = profile_of(&c, "sleep 500ms", &spin_syms);
    let user: f64 = busy.iter().filter(|(_, f)| f.starts_with("u ")).map(|(s, _)| s).sum();
    assert!(user > 0.5, "{busy:?}");
    assert!(busy[0].1.starts_with("u spin::"), "{busy:?}");
    common::poweroff(c);
}

/// The `spin` program's ELF file.
fn spin_elf() -> Vec<u8> {
    common::programs().iter().find(|(n, _)| n == "spin").expect("spin is built").1.clone()
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
