//! sleep DURATION: wait. DURATION is seconds (`2`, `0.5`) or milliseconds (`150ms`).

#![no_std]
#![no_main]

use ulib::prelude::*;
use ulib::uparse::duration::parse_ms;

ulib::entry!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let [_, arg] = argv.as_slice() else { die!("usage: sleep SECONDS | sleep MILLISECONDSms") };
    let Some(ms) = parse_ms(arg) else { die!("{arg}: not a duration") };
    match sys::sleep(ms) {
        Ok(()) => 0,
        Err(e) => die!("{}", e.message()),
    }
}
