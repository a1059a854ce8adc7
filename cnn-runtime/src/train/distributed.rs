//! The processes of a data-parallel run, and the few collective operations the trainer needs
//! of them. Everything of MPI lives in this module.
//!
//! The trainer talks to a [`Group`]: the ranks of an MPI job (with the `distributed` feature
//! and [`TrainConfig::distributed`](super::TrainConfig::distributed) set), or this process
//! alone, where every collective operation is the identity and nothing is copied. So the
//! training loop is the same code in both cases, without a `cfg` of its own.
//!
//! [`Mpi`] is the public side: it starts MPI in `main` and shuts it down when dropped, and
//! lets a program agree with the other ranks on an error before the trainer runs (a data
//! folder missing on one machine). Without the feature it exists, but [`Mpi::init`] says how
//! to build with MPI, and nothing of MPI is compiled or linked.
//!
//! Errors follow one rule in a distributed run: the lowest rank that met an error returns it,
//! every other rank returns [`TrainError::OtherRank`] naming that rank, so a program that
//! prints every error but that one prints it once, and no rank waits forever on one that
//! stopped.

use std::ops::Range;
use std::time::Duration;

use super::TrainError;

/// What [`Mpi::init`] and a distributed run say when the crate was built without MPI.
#[cfg(not(feature = "distributed"))]
const NOT_BUILT: &str = "distributed training needs MPI: build with `--features distributed` \
    (and an MPI library: apt-get install libopenmpi-dev openmpi-bin libclang-dev)";

/// MPI in this process, from [`Mpi::init`] (`MPI_Init`) until it is dropped (`MPI_Finalize`).
///
/// Hold it in `main` for as long as a distributed run trains: [`Trainer::fit`] with
/// [`TrainConfig::distributed`] set uses `MPI_COMM_WORLD`, all the processes `mpirun`
/// started, and every rank must call it alike. Rank 0 alone prints progress and writes the
/// run folder; see [`Trainer::fit`] for what is synchronized.
///
/// ```no_run
/// use cnn::prelude::*;
/// use cnn::train::{Mpi, TrainConfig, TrainError, Trainer};
/// # cnn::cnn! { struct Net { input: [1, 28, 28], flatten: Flatten, fc: Dense(10) } }
///
/// // `mpirun -np 4 target/release/examples/NAME`: four processes run this `main`.
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let mpi = Mpi::init()?;
///     // Every rank loads the data; if one cannot, all stop, and only one reports it.
///     let mnist = mpi.agree(cnn::data::Mnist::load("data/mnist").map_err(TrainError::from))?;
///     let config = TrainConfig::new().batch_size(64).distributed(true).run_name("lenet-4-ranks");
///     let outcome = Trainer::new(config).fit(Net::new(1), &mnist.train, &mnist.test)?;
///     if mpi.rank() == 0 {
///         cnn::io::save_safetensors(&outcome.net, "net.safetensors")?;
///     }
///     Ok(())
/// }
/// ```
///
/// [`Trainer::fit`]: super::Trainer::fit
/// [`TrainConfig::distributed`]: super::TrainConfig::distributed
pub struct Mpi {
    #[cfg(feature = "distributed")]
    _universe: mpi::environment::Universe,
    #[cfg(not(feature = "distributed"))]
    never: std::convert::Infallible,
}

/// What a program's `main` returns for the result of its run, printing the error once per job:
/// [`TrainError::OtherRank`] (another rank failed, and reports it) is not printed, any other
/// error is, as `error: ...` on standard error.
///
/// ```
/// use cnn_runtime::train::{exit_code, TrainError};
/// use std::process::ExitCode;
/// assert_eq!(exit_code(Ok(())), ExitCode::SUCCESS);
/// // Prints nothing: rank 0 reports its own failure.
/// assert_eq!(exit_code(Err(TrainError::OtherRank { rank: 0 }.into())), ExitCode::FAILURE);
/// ```
pub fn exit_code(result: Result<(), Box<dyn std::error::Error>>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if !matches!(e.downcast_ref(), Some(TrainError::OtherRank { .. })) {
                eprintln!("error: {e}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

impl Mpi {
    /// Starts MPI (`MPI_Init_thread`, calls serialized: the trainer calls MPI from the
    /// thread that runs [`Trainer::fit`](super::Trainer::fit), while its own threads compute).
    /// A program started without `mpirun` is rank 0 of 1.
    ///
    /// # Errors
    ///
    /// [`TrainError::Config`] if the crate was built without the `distributed` feature (the
    /// message says how to build it), or if MPI was started already in this process.
    ///
    /// ```
    /// use cnn_runtime::train::Mpi;
    /// match Mpi::init() {
    ///     Ok(mpi) => assert!(mpi.rank() < mpi.size()),
    ///     Err(e) => assert!(e.to_string().contains("--features distributed")),
    /// }
    /// ```
    pub fn init() -> Result<Mpi, TrainError> {
        #[cfg(feature = "distributed")]
        {
            match mpi::initialize_with_threading(mpi::Threading::Serialized) {
                Some((universe, _)) => Ok(Mpi { _universe: universe }),
                None => Err(TrainError::Config(
                    "MPI is started already in this process: call Mpi::init() once".into(),
                )),
            }
        }
        #[cfg(not(feature = "distributed"))]
        Err(TrainError::Config(NOT_BUILT.into()))
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> usize {
        self.group().rank()
    }

    /// The number of processes of the job.
    pub fn size(&self) -> usize {
        self.group().size()
    }

    /// Every rank passes its result of the same step; if any is an error, every rank gets
    /// one: the lowest failing rank its own, the others [`TrainError::OtherRank`] naming it.
    /// A collective operation: every rank must call it, in the same order as the others.
    pub fn agree<T, E: From<TrainError>>(&self, result: Result<T, E>) -> Result<T, E> {
        self.group().agree(result)
    }

    fn group(&self) -> Group {
        #[cfg(feature = "distributed")]
        {
            Group::world()
        }
        #[cfg(not(feature = "distributed"))]
        match self.never {}
    }
}

impl std::fmt::Debug for Mpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpi")
            .field("rank", &self.rank())
            .field("size", &self.size())
            .finish()
    }
}

/// Which contiguous part of a batch (or of the test set) one process takes: part `index` of
/// `count`, the parts as equal as whole samples allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Share {
    pub index: usize,
    pub count: usize,
}

impl Share {
    /// The whole: one process alone.
    #[cfg(test)]
    pub const WHOLE: Share = Share { index: 0, count: 1 };

    /// This part of `len` items.
    pub fn of(self, len: usize) -> Range<usize> {
        let bound = |i: usize| i * len / self.count;
        bound(self.index)..bound(self.index + 1)
    }
}

/// The processes training together: this one alone, or the ranks of an MPI job.
pub(crate) struct Group {
    kind: Kind,
    /// Time spent in [`Group::allreduce_sum`] since [`Group::take_reduce_time`].
    reduce_time: Duration,
}

enum Kind {
    Single,
    #[cfg(feature = "distributed")]
    Mpi {
        comm: mpi::topology::SimpleCommunicator,
        /// The copy of the values an allreduce sends (MPI sums into another buffer).
        send: Vec<f32>,
    },
}

// Without the feature only `Kind::Single` exists, which leaves the values alone.
#[cfg_attr(not(feature = "distributed"), allow(unused_variables))]
impl Group {
    /// This process alone.
    pub fn single() -> Group {
        Group {
            kind: Kind::Single,
            reduce_time: Duration::ZERO,
        }
    }

    /// The group a run trains in: every process of the MPI job when `distributed`, else this
    /// one.
    ///
    /// # Errors
    ///
    /// [`TrainError::Config`] when `distributed` but MPI is not running: built without the
    /// feature, or no [`Mpi`] held.
    pub fn new(distributed: bool) -> Result<Group, TrainError> {
        if !distributed {
            return Ok(Group::single());
        }
        #[cfg(feature = "distributed")]
        {
            if !mpi::environment::is_initialized() || mpi::environment::is_finalized() {
                return Err(TrainError::Config(
                    "distributed training needs MPI running: hold a cnn::train::Mpi (Mpi::init()) while the trainer runs"
                        .into(),
                ));
            }
            Ok(Group::world())
        }
        #[cfg(not(feature = "distributed"))]
        Err(TrainError::Config(NOT_BUILT.into()))
    }

    #[cfg(feature = "distributed")]
    fn world() -> Group {
        Group {
            kind: Kind::Mpi {
                comm: mpi::topology::SimpleCommunicator::world(),
                send: Vec::new(),
            },
            reduce_time: Duration::ZERO,
        }
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> usize {
        match &self.kind {
            Kind::Single => 0,
            #[cfg(feature = "distributed")]
            Kind::Mpi { comm, .. } => usize::try_from(mpi::traits::Communicator::rank(comm)).unwrap_or(0),
        }
    }

    /// The number of processes.
    pub fn size(&self) -> usize {
        match &self.kind {
            Kind::Single => 1,
            #[cfg(feature = "distributed")]
            Kind::Mpi { comm, .. } => usize::try_from(mpi::traits::Communicator::size(comm)).unwrap_or(1),
        }
    }

    /// Whether this process is rank 0, the one that prints and writes files.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// This process's part of every batch.
    pub fn share(&self) -> Share {
        Share {
            index: self.rank(),
            count: self.size(),
        }
    }

    /// The processes on this machine (this one alone without MPI): they share its cores.
    pub fn local_size(&self) -> usize {
        match &self.kind {
            Kind::Single => 1,
            #[cfg(feature = "distributed")]
            Kind::Mpi { comm, .. } => {
                use mpi::traits::Communicator;
                usize::try_from(comm.split_shared(0).size()).unwrap_or(1)
            }
        }
    }

    /// Replaces `values` on every rank by their sum over the ranks: one `MPI_Allreduce`.
    pub fn allreduce_sum(&mut self, values: &mut [f32]) {
        match &mut self.kind {
            Kind::Single => {}
            #[cfg(feature = "distributed")]
            Kind::Mpi { comm, send } => {
                use mpi::traits::CommunicatorCollectives;
                let start = std::time::Instant::now();
                send.clear();
                send.extend_from_slice(values);
                comm.all_reduce_into(&send[..], values, mpi::collective::SystemOperation::sum());
                self.reduce_time += start.elapsed();
            }
        }
    }

    /// [`Group::allreduce_sum`] in `f64`, for sums that `f32` would round: counts and
    /// evaluation losses.
    pub fn allreduce_sum_f64(&self, values: &mut [f64]) {
        match &self.kind {
            Kind::Single => {}
            #[cfg(feature = "distributed")]
            Kind::Mpi { comm, .. } => {
                use mpi::traits::CommunicatorCollectives;
                let send = values.to_vec();
                comm.all_reduce_into(&send[..], values, mpi::collective::SystemOperation::sum());
            }
        }
    }

    /// Time spent in [`Group::allreduce_sum`] since the last call (including the wait for the
    /// slowest rank).
    pub fn take_reduce_time(&mut self) -> Duration {
        std::mem::take(&mut self.reduce_time)
    }

    /// Overwrites `values` on every rank with rank 0's.
    pub fn broadcast(&self, values: &mut [f32]) {
        match &self.kind {
            Kind::Single => {}
            #[cfg(feature = "distributed")]
            Kind::Mpi { comm, .. } => {
                use mpi::traits::{Communicator, Root};
                comm.process_at_rank(0).broadcast_into(values);
            }
        }
    }

    /// Rank 0's `text`, on every rank.
    pub fn broadcast_string(&self, text: String) -> String {
        match &self.kind {
            Kind::Single => text,
            #[cfg(feature = "distributed")]
            Kind::Mpi { comm, .. } => {
                use mpi::traits::{Communicator, Root};
                let root = comm.process_at_rank(0);
                let mut len = text.len() as u64;
                root.broadcast_into(&mut len);
                let mut bytes = text.into_bytes();
                bytes.resize(usize::try_from(len).unwrap_or(0), 0);
                root.broadcast_into(&mut bytes[..]);
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }

    /// The lowest rank that `failed`, if one did; every rank gets the same answer.
    fn first_failure(&self, failed: bool) -> Option<usize> {
        match &self.kind {
            Kind::Single => failed.then_some(0),
            #[cfg(feature = "distributed")]
            Kind::Mpi { comm, .. } => {
                use mpi::traits::CommunicatorCollectives;
                let size = self.size() as u64;
                let mine = if failed { self.rank() as u64 } else { size };
                let mut first = size;
                comm.all_reduce_into(&mine, &mut first, mpi::collective::SystemOperation::min());
                (first < size).then_some(first as usize)
            }
        }
    }

    /// Every rank learns whether one failed at this step (see the module docs for which
    /// error each returns). Collective: every rank calls it at the same point.
    pub fn agree<T, E: From<TrainError>>(&self, result: Result<T, E>) -> Result<T, E> {
        match self.first_failure(result.is_err()) {
            Some(rank) if rank != self.rank() => Err(TrainError::OtherRank { rank }.into()),
            _ => result,
        }
    }

    /// An error every rank met alike (it follows from values they all share): rank 0 returns
    /// it, the others [`TrainError::OtherRank`], with no communication.
    pub fn shared_error(&self, error: TrainError) -> TrainError {
        if self.is_root() {
            error
        } else {
            TrainError::OtherRank { rank: 0 }
        }
    }

    /// The seed of this rank's Dropout masks: the network's own on rank 0 (so one process
    /// draws the masks it draws without MPI), another per rank, so that the ranks do not drop
    /// the same units of their samples at the same place in their shares.
    pub fn dropout_seed(&self, seed: u64) -> u64 {
        seed ^ (self.rank() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_a_batch_in_order() {
        for (len, count) in [(64, 2), (7, 3), (2, 4), (0, 2), (10, 1)] {
            let parts: Vec<Range<usize>> = (0..count).map(|index| Share { index, count }.of(len)).collect();
            assert_eq!(parts[0].start, 0);
            assert_eq!(parts[count - 1].end, len);
            assert!(parts.windows(2).all(|w| w[0].end == w[1].start), "{parts:?}");
            assert!(parts
                .iter()
                .all(|p| p.len() <= len.div_ceil(count) && p.len() >= len / count));
        }
        assert_eq!(Share::WHOLE.of(5), 0..5);
    }

    #[test]
    fn one_process_agrees_with_itself() {
        let mut group = Group::single();
        assert_eq!((group.rank(), group.size(), group.local_size()), (0, 1, 1));
        let mut values = [1.0, 2.5];
        group.allreduce_sum(&mut values);
        group.broadcast(&mut values);
        assert_eq!(values, [1.0, 2.5]);
        assert_eq!(group.dropout_seed(7), 7);
        let err = group
            .agree::<(), TrainError>(Err(TrainError::Config("x".into())))
            .unwrap_err();
        assert!(matches!(err, TrainError::Config(_)));
        assert_eq!(group.agree::<_, TrainError>(Ok(3)).unwrap(), 3);
        assert!(matches!(
            group.shared_error(TrainError::Config("y".into())),
            TrainError::Config(_)
        ));
    }

    #[test]
    fn a_distributed_run_needs_mpi() {
        assert!(Group::new(false).is_ok());
        #[cfg(not(feature = "distributed"))]
        {
            let err = Group::new(true).err().unwrap().to_string();
            assert!(err.contains("--features distributed"), "{err}");
            assert!(Mpi::init().is_err());
        }
    }
}
