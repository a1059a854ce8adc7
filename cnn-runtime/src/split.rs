//! One sample's work on two threads: at batch 1 a network has no batch to split across
//! threads, so each large convolution splits its own product in two halves (bands of output
//! rows, or a Winograd layer's tiles by rows; its output channels where they make one
//! vector): the calling thread computes one, a helper thread the other, each in working
//! memory of its own ([`halves`]; the helper's is grown by the callers before they offer it a
//! half, so that a sample's first calls size it).
//!
//! Only work that [`splitting`] runs splits, and only products of at least [`MIN_MACS`]
//! multiply-adds ([`MIN_UNFOLDED_MACS`] for unfolded ones). The helper is one thread for the
//! process, started by the first split; it waits for work spinning, so that a half reaches
//! it in well under a microsecond (rayon's
//! pool, whose idle threads yield to the OS and then sleep, took longer to meet than the
//! halves of ResNet-8's layers took to compute), and sleeps after [`SPIN`] without any. A
//! half the helper has not taken when the caller is done with its own, the caller takes back
//! and computes itself: a sleeping or busy helper costs nothing but the wake-up call. Each
//! half computes its rows of the product exactly as the whole product would (every entry the
//! same sum in the same order), so a split changes no bit of the result.
//!
//! Whether a network's calls split at all, each network learns from their times ([`Choice`]):
//! where the two cores are far apart, a split costs more than it saves.

use core::ops::Range;

#[cfg(feature = "std")]
use crate::simd::{from_line, LINE};
#[cfg(feature = "std")]
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

/// Products smaller than this many multiply-adds are not split: about 8 us of work on one
/// core. ResNet-8's stem (442,368) splits: its batch 1 at two threads took 163.4 us against
/// 178.3 with a bound of 500,000 (`cargo run --release --example bench -- --net resnet8
/// --threads 2 --secs 1 --only b1`, 12 interleaved rounds, medians, AMD EPYC Zen 4).
pub(crate) const MIN_MACS: usize = 400_000;

/// How long the helper spins for work after its last half before it sleeps.
#[cfg(feature = "std")]
const SPIN: std::time::Duration = std::time::Duration::from_micros(500);

#[cfg(feature = "std")]
std::thread_local! {
    /// Whether the work this thread runs now may split its products ([`splitting`]).
    static SPLITTING: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Runs `work` with this thread's products of at least [`MIN_MACS`] multiply-adds split in
/// two halves, one on the helper thread ([`halves`]); returns what `work` returns.
#[cfg(feature = "std")]
pub(crate) fn splitting<R>(work: impl FnOnce() -> R) -> R {
    /// Turns splitting off again when `work` returns or unwinds.
    struct Off(bool);
    impl Drop for Off {
        fn drop(&mut self) {
            SPLITTING.with(|s| s.set(self.0));
        }
    }
    let _off = Off(SPLITTING.with(|s| s.replace(true)));
    work()
}

/// Calls of one batch size from one round of probes to the next ([`Choice`]).
#[cfg(feature = "std")]
const PERIOD: u32 = 2048;

/// Calls from one round of probes to the next where the last found the calls faster alone:
/// sooner, as a split is the faster way when the cores are close, by a third.
#[cfg(feature = "std")]
const PERIOD_ALONE: u32 = 256;

/// Calls in each of a round's two blocks of probes, the first [`SKIP`] of which are not
/// counted.
#[cfg(feature = "std")]
const BLOCK: u32 = 16;

/// Calls at the start of a block of probes that are not counted: they run on the caches the
/// other way left, and the first split one wakes the helper where it slept.
#[cfg(feature = "std")]
const SKIP: u32 = 4;

/// Calls before the first round of probes: past the first calls of a process, which run
/// slower either way as its memory and caches warm up; early, for networks whose calls are
/// slow (a split ResNet-8 took 600 us a call where the two cores were far apart: a first
/// round after [`PERIOD`] calls came after more than a second).
#[cfg(feature = "std")]
const WARM: u32 = 64;

/// Calls alone must take under `MARGIN - 1` / `MARGIN` of the time split to be chosen.
#[cfg(feature = "std")]
const MARGIN: u64 = 20;

/// Batch sizes a [`Choice`] keeps apart: the batches too small to split across threads
/// (fewer than two chunks of `MIN_ROWS_PER_THREAD`); larger ones share the last.
#[cfg(feature = "std")]
const BATCHES: usize = 8;

/// Whether a network's samples split ([`splitting`]) or run on the calling thread alone,
/// learnt from the calls' own times, for each batch size: every [`PERIOD`] calls, a round of
/// probes runs [`BLOCK`] calls split, then as many alone, and the other calls go the way
/// whose block's median call took less time. The first [`SKIP`] calls of a block are not
/// counted: they run on the caches the other way left (ResNet-8's batch 1 alone took 400-500
/// us right after a split call, against 290-300 after one alone, where the cores were far
/// apart: a throwaway print of each probe's time in `bench --net resnet8 --threads 2 --only
/// b1`; the first split calls after a block alone took 250-370 us against 130-240 after, the
/// helper just woken). A median, not the block's sum: one call held up by something else
/// (the helper's vCPU taken away for a while) does not decide for the next 2,048.
///
/// Where the two cores are slow to reach each other, a split costs more than it saves: on a
/// 2-vCPU AMD EPYC (Zen 4) virtual machine whose cores at times took 300-400 ns for a round
/// trip of one cache line instead of 55-60 (a throwaway C program bouncing one atomic between
/// threads pinned to the two vCPUs, run after each bench), ResNet-8's batch 1 took 316-341 us
/// split against about 290 alone, and 195-220 split when the cores were close (`cargo run
/// --release --example bench -- --net resnet8 --threads "1 2" --secs 1 --only b1`, 14 runs
/// against the binary before this choice, interleaved). With the code of 2026-12-04, 130-135
/// us split against 186-189 alone with the cores close, 230-240 split against 187-189 alone
/// with them far apart (the probes' medians, 12 runs, AMD EPYC Zen 4). The way taken
/// changes no bit of the result (a split computes what one thread computes), only the time;
/// the probes run [`BLOCK`] calls in [`PERIOD`] the slower way.
#[cfg(feature = "std")]
pub(crate) struct Choice {
    batches: [Probes; BATCHES],
}

/// The probes of one batch size.
#[cfg(feature = "std")]
struct Probes {
    /// Calls since the last round of probes (counting from `PERIOD - 2 BLOCK - WARM` at
    /// first, so that the first round comes after `WARM` calls).
    calls: AtomicU32,
    /// Whether the last round found the calls faster alone.
    alone: AtomicBool,
    /// Nanoseconds each call of this round's blocks took: alone, split.
    took: [[AtomicU64; BLOCK as usize]; 2],
}

#[cfg(feature = "std")]
impl Default for Choice {
    fn default() -> Choice {
        Choice {
            batches: core::array::from_fn(|_| Probes {
                calls: AtomicU32::new(PERIOD - 2 * BLOCK - WARM),
                alone: AtomicBool::new(false),
                took: core::array::from_fn(|_| core::array::from_fn(|_| AtomicU64::new(0))),
            }),
        }
    }
}

#[cfg(feature = "std")]
impl Choice {
    /// Runs `work`, a call on `batch` samples, split or on this thread alone: as the last
    /// round of probes found faster, or as this call's place in a round says.
    pub(crate) fn run<R>(&self, batch: usize, work: impl FnOnce() -> R) -> R {
        let probes = &self.batches[batch.clamp(1, BATCHES) - 1];
        let alone = probes.alone.load(Relaxed);
        // A round ends each period; the first one after `WARM` calls.
        let period = if alone { PERIOD_ALONE } else { PERIOD };
        let call = (probes.calls.fetch_add(1, Relaxed) % period).wrapping_sub(period - 2 * BLOCK);
        if call >= 2 * BLOCK {
            return if alone { work() } else { splitting(work) };
        }
        let split = call < BLOCK;
        let start = std::time::Instant::now();
        let out = if split { splitting(work) } else { work() };
        let took = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        probes.took[usize::from(split)][(call % BLOCK) as usize].store(took, Relaxed);
        if call == 2 * BLOCK - 1 {
            // The median of each block's counted calls: a call slowed by something else (the
            // helper's core taken away for a while, an interrupt) does not decide.
            let [alone, split] = probes.took.each_ref().map(|block| {
                let mut counted: [u64; (BLOCK - SKIP) as usize] =
                    core::array::from_fn(|i| block[SKIP as usize + i].load(Relaxed));
                counted.sort_unstable();
                counted[counted.len() / 2]
            });
            probes
                .alone
                .store(alone.saturating_mul(MARGIN) < split.saturating_mul(MARGIN - 1), Relaxed);
            probes.calls.store(0, Relaxed);
        }
        out
    }
}

/// Unfolded products (a 1x1 strided shortcut's) split from this many multiply-adds, fewer
/// than [`MIN_MACS`]: each half unfolds only the pixels the kernel reads, a quarter of the
/// input at stride 2. ResNet-8's two shortcuts (131,072 each) split: its batch 1 at two
/// threads took 164.2 us against 168.8 with them on the calling thread alone (the command
/// and machine of [`MIN_MACS`], 12 interleaved rounds, medians).
pub(crate) const MIN_UNFOLDED_MACS: usize = 100_000;

/// `len` elements where a product of `macs` multiply-adds may split (from `min` on), for
/// the helper's half (which the calling thread computes there where it takes it back); 0
/// where it never splits.
pub(crate) const fn spare_len(min: usize, macs: usize, len: usize) -> usize {
    if macs >= min {
        len
    } else {
        0
    }
}

/// Whether a product of `macs` multiply-adds over `m` rows of output is split here: the
/// calling thread is [`splitting`], the product has at least [`MIN_MACS`] multiply-adds, and
/// two rows or more.
pub(crate) fn worth(macs: usize, m: usize) -> bool {
    worth_from(MIN_MACS, macs, m)
}

/// [`worth`] with a bound of `min` multiply-adds.
pub(crate) fn worth_from(min: usize, macs: usize, m: usize) -> bool {
    m >= 2 && macs >= min && now()
}

/// An output shared by the two threads of a split sample ([`halves`]), which write disjoint
/// elements of it (each its own pixels or channels) through the pointer.
pub(crate) struct Shared(pub *mut f32);

// SAFETY: the threads that share it write disjoint elements (each user says which).
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer (a method, so that closures capture the whole `Shared`, which is `Sync`).
    pub(crate) fn get(&self) -> *mut f32 {
        self.0
    }
}

/// `product(rows, c, memory)` for the two halves of rows `0..m` of an output whose rows lie
/// `stride` elements apart in `c`, each half given `c` from its first row on: the first half
/// here with `memory[0]`, the second on the helper with memory of the helper's own as long as
/// `memory[1]` (or here too with `memory[1]`, if the helper is held by another caller or has
/// not taken it in time), each half's working memory its own, so that neither thread writes
/// a cache line the other reads.
///
/// # Panics
///
/// If `product` does, on either thread.
pub(crate) fn halves(
    m: usize,
    stride: usize,
    c: &mut [f32],
    memory: [&mut [f32]; 2],
    product: impl Fn(Range<usize>, &mut [f32], &mut [f32]) + Sync,
) {
    let half = m / 2;
    let (low, high) = c.split_at_mut((half * stride).min(c.len()));
    let [mine, theirs] = memory;
    both(
        theirs.len(),
        || product(0..half, low, mine),
        || own_memory(theirs, |memory| product(half..m, high, memory)),
    );
}

#[cfg(feature = "std")]
std::thread_local! {
    /// Whether this thread is the helper.
    static ON_HELPER: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// `f(memory)` with working memory as long as `given`: on the helper thread its own, kept
/// from call to call, so that no line of it is ever written by the calling thread (whose
/// layers reuse their scratch, the helper's halves of one layer included, for other things);
/// `given` elsewhere.
fn own_memory<R>(given: &mut [f32], f: impl FnOnce(&mut [f32]) -> R) -> R {
    #[cfg(feature = "std")]
    if ON_HELPER.with(core::cell::Cell::get) {
        return helper::with_memory(given.len(), f);
    }
    f(given)
}

/// Whether the calling thread is [`splitting`].
fn now() -> bool {
    #[cfg(feature = "std")]
    return SPLITTING.with(core::cell::Cell::get);
    #[cfg(not(feature = "std"))]
    false
}

/// `a` on this thread and `b` on the helper, or both here where there is no free helper;
/// `b` takes `len` elements of the helper's memory ([`own_memory`]).
fn both(len: usize, a: impl FnOnce(), b: impl FnOnce() + Send) {
    #[cfg(feature = "std")]
    if let Some(helper) = helper::free() {
        helper.reserve(len);
        return helper.both(a, b);
    }
    let _ = len;
    a();
    b();
}

#[cfg(feature = "std")]
mod helper {
    use super::SPIN;
    use super::{from_line, LINE};
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::ptr::null_mut;
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering::*};
    use std::sync::{Mutex, OnceLock, PoisonError};
    use std::thread::{self, Thread};
    use std::time::Instant;
    use std::vec::Vec;

    /// A half offered to the helper: a closure on the caller's stack, taken (and then run)
    /// exactly once, by the helper or by the caller.
    struct Job {
        /// Runs the closure at `data`.
        run: unsafe fn(*mut ()),
        data: *mut (),
        /// `OFFERED` until the helper has run it: `DONE`, or `PANICKED`.
        state: AtomicU8,
    }

    const OFFERED: u8 = 0;
    const DONE: u8 = 1;
    const PANICKED: u8 = 2;

    /// Runs the closure in `data`, an `Option<F>` holding it.
    ///
    /// # Safety
    ///
    /// `data` points to a live `Option<F>` that no one else reads or writes meanwhile.
    unsafe fn call<F: FnOnce()>(data: *mut ()) {
        // SAFETY: the contract.
        let slot = unsafe { &mut *data.cast::<Option<F>>() };
        if let Some(f) = slot.take() {
            f()
        }
    }

    pub(super) struct Helper {
        /// The helper's working memory ([`with_memory`]), grown by the callers that hold it
        /// before they offer a half: a sample's first calls size it whether or not the helper
        /// takes their halves (it may be asleep, or its core busy), so that later calls
        /// allocate nothing.
        memory: Mutex<Vec<f32>>,
        /// The job on offer, or null.
        offer: AtomicPtr<Job>,
        /// A caller holds the helper: one split at a time.
        busy: AtomicBool,
        /// The helper has stopped spinning and parks (or is about to).
        asleep: AtomicBool,
        thread: Thread,
    }

    /// The helper, started by the first call, if it is not held by another caller; `None`
    /// too where no thread could be started.
    pub(super) fn free() -> Option<Guard> {
        let helper = HELPER
            .get_or_init(|| {
                let spawned = thread::Builder::new().name("cnn-split".into()).spawn(|| {
                    super::ON_HELPER.with(|h| h.set(true));
                    if let Some(helper) = HELPER.wait() {
                        helper.serve()
                    }
                });
                spawned.ok().map(|handle| Helper {
                    memory: Mutex::new(Vec::new()),
                    offer: AtomicPtr::new(null_mut()),
                    busy: AtomicBool::new(false),
                    asleep: AtomicBool::new(false),
                    thread: handle.thread().clone(),
                })
            })
            .as_ref()?;
        (!helper.busy.swap(true, Acquire)).then_some(Guard(helper))
    }

    /// The helper, started by the first split (`free`).
    static HELPER: OnceLock<Option<Helper>> = OnceLock::new();

    /// `f` with `len` elements of the helper's working memory, from a cache line's start.
    ///
    /// # Panics
    ///
    /// If there is no helper (only the helper thread calls this).
    pub(super) fn with_memory<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
        let helper = HELPER
            .get()
            .and_then(Option::as_ref)
            .expect("split: the helper's memory without a helper");
        let mut memory = helper.memory.lock().unwrap_or_else(PoisonError::into_inner);
        grow(&mut memory, len);
        f(&mut from_line(&mut memory)[..len])
    }

    /// `memory` at least `len` elements from its first cache line's start.
    fn grow(memory: &mut Vec<f32>, len: usize) {
        if memory.len() < len + LINE {
            memory.resize(len + LINE, 0.0);
        }
    }

    /// The helper, held by one caller until dropped.
    pub(super) struct Guard(&'static Helper);

    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.busy.store(false, Release);
        }
    }

    impl Guard {
        /// Grows the helper's memory to `len` elements, where shorter: the helper runs nothing
        /// while a caller holds it but the half it is offered.
        pub(super) fn reserve(&self, len: usize) {
            grow(&mut self.0.memory.lock().unwrap_or_else(PoisonError::into_inner), len);
        }

        /// `a` here and `b` on the helper (or here, if the helper has not taken it when `a`
        /// is done); returns when both have run, and unwinds if either panicked.
        pub(super) fn both<B: FnOnce() + Send>(self, a: impl FnOnce(), b: B) {
            let helper = self.0;
            let mut slot = Some(b);
            let job = Job {
                run: call::<B>,
                data: (&raw mut slot).cast(),
                state: AtomicU8::new(OFFERED),
            };
            let offered = (&raw const job).cast_mut();
            // SeqCst with `asleep` (here and in `serve`): either the helper sees the offer
            // before it parks, or this sees it asleep and wakes it.
            helper.offer.store(offered, SeqCst);
            if helper.asleep.load(SeqCst) {
                helper.thread.unpark();
            }
            let mine = catch_unwind(AssertUnwindSafe(a));
            let theirs = if helper
                .offer
                .compare_exchange(offered, null_mut(), AcqRel, Acquire)
                .is_ok()
            {
                // Taken back: the helper never saw it, so `slot` is this thread's again.
                catch_unwind(AssertUnwindSafe(|| slot.take().map(|b| b()))).map(|_| ())
            } else {
                // The helper runs it: wait for the end, which publishes its writes.
                let mut spins = 0u32;
                loop {
                    match job.state.load(Acquire) {
                        OFFERED => {
                            // Now and then the core goes to whoever else is waiting for
                            // it: where the helper shares this thread's core, it is.
                            spins = spins.wrapping_add(1);
                            if spins.is_multiple_of(64) {
                                thread::yield_now();
                            } else {
                                std::hint::spin_loop();
                            }
                        }
                        DONE => break Ok(()),
                        _ => {
                            let panic: Box<dyn std::any::Any + Send> =
                                Box::new("a half of a split product panicked on the helper thread");
                            break Err(panic);
                        }
                    }
                }
            };
            drop(self);
            if let Err(panic) = mine.and(theirs) {
                resume_unwind(panic);
            }
        }
    }

    impl Helper {
        /// The helper thread: runs what is offered, spinning between offers, parked after
        /// [`SPIN`] without one.
        fn serve(&self) {
            let mut idle = Instant::now();
            let mut spins = 0u32;
            loop {
                // Read before taking: a loop of atomic swaps would keep the cache line (and
                // the core, where the two threads share one) from the thread at work.
                let job = if self.offer.load(Relaxed).is_null() {
                    null_mut()
                } else {
                    // Null again if the caller took it back meanwhile.
                    self.offer.swap(null_mut(), Acquire)
                };
                if !job.is_null() {
                    // SAFETY: an offered job lives until its state leaves OFFERED (its caller
                    // waits for that), and, taken off the offer, is this thread's alone to run.
                    let job = unsafe { &*job };
                    // SAFETY: as above; `data` is the caller's `Option` of the closure.
                    let ran = catch_unwind(AssertUnwindSafe(|| unsafe { (job.run)(job.data) }));
                    job.state.store(if ran.is_ok() { DONE } else { PANICKED }, Release);
                    idle = Instant::now();
                    continue;
                }
                spins = spins.wrapping_add(1);
                if !spins.is_multiple_of(256) {
                    std::hint::spin_loop();
                } else if idle.elapsed() <= SPIN {
                    // Where the caller shares this core, it gets it back.
                    thread::yield_now();
                } else {
                    self.asleep.store(true, SeqCst);
                    if self.offer.load(SeqCst).is_null() {
                        thread::park();
                    }
                    self.asleep.store(false, SeqCst);
                    idle = Instant::now();
                }
            }
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn large_products_split_only_inside_splitting() {
        assert!(!worth(MIN_MACS, 8), "not splitting");
        assert!(splitting(|| worth(MIN_MACS, 8)));
        assert!(!splitting(|| worth(MIN_MACS - 1, 8)), "too small");
        assert!(!splitting(|| worth(MIN_MACS, 1)), "one row");
        assert!(!worth(MIN_MACS, 8), "splitting ends with its work");
    }

    /// `Choice::run` on batch 1 through a round of probes, each call split taking `split` and
    /// alone `alone` on this thread; then whether the next call splits.
    fn after_a_round(split: Duration, alone: Duration) -> bool {
        let choice = Choice::default();
        // The calls before the round go as the choice starts: split.
        choice.batches[0].calls.store(PERIOD - 2 * BLOCK, Relaxed);
        let busy = |d: Duration| {
            let start = Instant::now();
            while start.elapsed() < d {}
        };
        for _ in 0..2 * BLOCK {
            choice.run(1, || busy(if now() { split } else { alone }));
        }
        choice.run(1, now)
    }

    #[test]
    fn calls_split_unless_their_probes_run_faster_alone() {
        // 2 ms a call: a block of the other way would have to wait 28 ms to lose.
        let (slow, fast) = (Duration::from_millis(2), Duration::ZERO);
        assert!(!after_a_round(slow, fast), "split calls 2 ms slower: alone");
        assert!(after_a_round(fast, slow), "split calls 2 ms faster: split");
        // Each batch size has its own probes.
        let choice = Choice::default();
        choice.batches[0].alone.store(true, Relaxed);
        assert!(!choice.run(1, now) && choice.run(3, now));
    }

    #[test]
    fn halves_cover_the_rows_each_with_its_own_memory() {
        for m in [2, 3, 8, 9] {
            // Each row: its index, then the length of its half's memory and whether that
            // memory is the first one given.
            let mut c = vec![0.0; m * 3];
            let (mut one, mut two) = ([1.0f32; 4], [2.0f32; 5]);
            let first = one.as_ptr() as usize;
            for _ in 0..50 {
                halves(m, 3, &mut c, [&mut one, &mut two], |rows, c, memory| {
                    // The memory is this half's alone: what it writes stays.
                    memory.fill(rows.start as f32);
                    for (r, i) in rows.clone().enumerate() {
                        c[r * 3] = i as f32;
                        c[r * 3 + 1] = memory.len() as f32;
                        c[r * 3 + 2] = f32::from(u8::from(memory.as_ptr() as usize == first));
                    }
                    assert!(memory.iter().all(|&v| v == rows.start as f32));
                });
                let want: Vec<f32> = (0..m)
                    .flat_map(|i| {
                        if i < m / 2 {
                            [i as f32, 4.0, 1.0]
                        } else {
                            [i as f32, 5.0, 0.0]
                        }
                    })
                    .collect();
                assert_eq!(c, want, "m = {m}");
            }
        }
    }

    #[test]
    fn a_panic_in_either_half_reaches_the_caller() {
        for panicking in 0..2 {
            let mut c = vec![0.0; 4];
            let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                halves(4, 1, &mut c, [&mut [], &mut []], |rows, _, _| {
                    assert!(rows.start / 2 != panicking, "half {panicking}");
                })
            }));
            assert!(got.is_err(), "half {panicking} panicked, the call did not");
        }
        // The helper is free again.
        let mut c = vec![0.0; 4];
        halves(4, 1, &mut c, [&mut [], &mut []], |rows, c, _| c.fill(rows.start as f32));
        assert_eq!(c, [0.0, 0.0, 2.0, 2.0]);
    }
}
