//! NUMA-local memory for shards: a shard's thread gets the memory policy "prefer (or only
//! use) the node of my core", so its io_uring buffers, partition state and request buffers
//! come from local memory.
//!
//! The policy is set on the thread that spawns the shard, just before the spawn: Linux
//! threads inherit the memory policy at clone(2), and glommio allocates the shard's I/O
//! memory on the new thread before any of our code runs there. Which node each shard gets
//! is decided by the binary from the machine's topology (`sluice_tuning::numa`); on a
//! single-node machine there is nothing to bind.

use std::io;

use serde::{Deserialize, Serialize};

/// `[engine] numa_memory`: how a shard's memory is tied to its core's NUMA node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumaMemory {
    /// MPOL_PREFERRED: the local node first, other nodes when it is full. The default.
    #[default]
    Preferred,
    /// MPOL_BIND: the local node only (allocation fails rather than going remote).
    Bind,
    /// Leave the kernel's default (first touch).
    Off,
}

/// Bits in the node masks passed to the kernel: the kernel's largest MAX_NUMNODES (1024),
/// so get_mempolicy never refuses the mask as too small.
const NODE_MASK_BITS: usize = 1024;
const NODE_MASK_WORDS: usize = NODE_MASK_BITS / 64;

/// A thread's memory policy as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadPolicy {
    /// MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, ... (libc constants).
    pub mode: i32,
    /// Nodes in the policy's mask.
    pub nodes: Vec<usize>,
}

/// Sets the calling thread's memory policy (`node` None: back to the default).
pub fn set_thread_policy(mode: NumaMemory, node: Option<usize>) -> io::Result<()> {
    let mut mask = [0u64; NODE_MASK_WORDS];
    let mode = match (mode, node) {
        (NumaMemory::Off, _) | (_, None) => libc::MPOL_DEFAULT,
        (m, Some(n)) => {
            if n >= NODE_MASK_BITS {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("NUMA node {n} is beyond {NODE_MASK_BITS}"),
                ));
            }
            mask[n / 64] |= 1 << (n % 64);
            if m == NumaMemory::Bind {
                libc::MPOL_BIND
            } else {
                libc::MPOL_PREFERRED
            }
        }
    };
    let with_mask = mode != libc::MPOL_DEFAULT;
    mempolicy_syscall(MempolicyCall::Set {
        mode,
        mask: with_mask.then_some(&mask),
    })
}

/// The calling thread's memory policy.
pub fn thread_policy() -> io::Result<ThreadPolicy> {
    let mut mode: libc::c_int = -1;
    let mut mask = [0u64; NODE_MASK_WORDS];
    mempolicy_syscall(MempolicyCall::Get {
        mode: &mut mode,
        mask: &mut mask,
    })?;
    let nodes = (0..NODE_MASK_BITS)
        .filter(|n| mask[n / 64] & (1 << (n % 64)) != 0)
        .collect();
    Ok(ThreadPolicy { mode, nodes })
}

enum MempolicyCall<'a> {
    Set {
        mode: libc::c_int,
        mask: Option<&'a [u64; NODE_MASK_WORDS]>,
    },
    Get {
        mode: &'a mut libc::c_int,
        mask: &'a mut [u64; NODE_MASK_WORDS],
    },
}

/// The only unsafe code in the engine: the two memory-policy system calls, which libc
/// exposes only as raw `syscall`s.
#[allow(unsafe_code)]
fn mempolicy_syscall(call: MempolicyCall<'_>) -> io::Result<()> {
    // The kernel reads (set) or writes (get) at most `maxnode - 1` bits of the mask.
    let maxnode = (NODE_MASK_BITS + 1) as libc::c_ulong;
    let rc = match call {
        MempolicyCall::Set { mode, mask } => {
            let ptr = mask.map_or(std::ptr::null(), |m| m.as_ptr());
            // SAFETY: `ptr` is null (MPOL_DEFAULT takes no mask) or points to a live
            // [u64; NODE_MASK_WORDS], i.e. NODE_MASK_BITS bits, and the kernel reads at most
            // maxnode - 1 = NODE_MASK_BITS bits of it; it keeps no reference after returning.
            unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) }
        }
        MempolicyCall::Get { mode, mask } => {
            let flags: libc::c_ulong = 0;
            // SAFETY: `mode` and `mask` are exclusive borrows of live memory of the sizes
            // the kernel writes (one int; at most NODE_MASK_BITS bits); addr is null and
            // flags 0 (the calling thread's policy), so nothing else is read or written.
            unsafe {
                libc::syscall(
                    libc::SYS_get_mempolicy,
                    mode as *mut libc::c_int,
                    mask.as_mut_ptr(),
                    maxnode,
                    std::ptr::null_mut::<libc::c_void>(),
                    flags,
                )
            }
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On this machine's node 0 (every Linux machine has one): the calls succeed and the
    /// policy reads back. In its own thread, so the test harness's threads keep theirs.
    #[test]
    fn preferred_and_bind_policies_read_back_and_reset() {
        std::thread::spawn(|| {
            set_thread_policy(NumaMemory::Preferred, Some(0)).expect("set_mempolicy works");
            assert_eq!(
                thread_policy().expect("get_mempolicy works"),
                ThreadPolicy {
                    mode: libc::MPOL_PREFERRED,
                    nodes: vec![0]
                }
            );
            set_thread_policy(NumaMemory::Bind, Some(0)).expect("bind");
            assert_eq!(thread_policy().expect("get").mode, libc::MPOL_BIND);
            // A thread spawned now inherits the policy (what shard start-up relies on).
            let inherited = std::thread::spawn(|| thread_policy().expect("get"))
                .join()
                .expect("child");
            assert_eq!(inherited.mode, libc::MPOL_BIND);
            assert_eq!(inherited.nodes, vec![0]);
            set_thread_policy(NumaMemory::Preferred, None).expect("reset");
            assert_eq!(thread_policy().expect("get").mode, libc::MPOL_DEFAULT);
        })
        .join()
        .expect("policy thread");
    }

    #[test]
    fn a_node_outside_the_mask_is_refused() {
        let e = set_thread_policy(NumaMemory::Preferred, Some(NODE_MASK_BITS))
            .expect_err("beyond the mask");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
