//! Helpers shared by the host tests of every crate in the workspace. A host-only crate (it
//! uses `std`), taken only as a dev-dependency: nothing in the kernel links it.
//!
//! - Driving futures: [`block_on`] (parks between polls; a lost wakeup fails the test instead
//!   of hanging it), [`poll_once`], [`Task`] (a future polled by hand, which remembers whether
//!   it was woken).
//! - Wakers and probes: [`counting_waker`], [`drop_flag`], [`park_once`], [`leak`],
//!   [`spinning_test`].
//! - Randomness: [`Rng`], a small seeded generator whose seed is printed so that a failure
//!   replays ([`Rng::from_env`] lets an environment variable choose it).
//!
//! Users: the runtime's, drivers' and file system's unit tests, the kernel modules compiled on
//! the host (`mkimage/tests/kernel_file.rs`) and mkimage's integration tests. What those
//! integration tests need to boot the kernel in QEMU (building it, images with the user
//! programs, a shell at the console) stays in `mkimage/tests/common/`: it is built on the
//! mkimage library and on the `mkimage` binary that cargo builds for that package's tests
//! only, and the runtime's tests should not have to build QEMU tooling.

mod future;
mod rng;

pub use future::{
    block_on, counting_waker, drop_flag, leak, park_once, poll_once, spinning_test, Counter,
    DropGuard, Flag, Task, WakerSlot, BLOCK_ON_LIMIT,
};
pub use rng::Rng;
