/* tierd_native.h - the native I/O engine of tierd: batched file I/O on io_uring.
 *
 * One ring runs one batch at a time: the caller fills an array of
 * struct tierd_op, calls tierd_ring_submit_wait(), and reads each op's result.
 * The ring is NOT thread-safe: serialize calls on one ring (the Python wrapper
 * holds a lock). Rings are independent; use one per thread for parallelism.
 *
 * Every call that can fail returns 0 or a negative errno (never sets errno),
 * so the caller can tell "io_uring unavailable" (-ENOSYS, -EPERM,
 * -EOPNOTSUPP) from real failures (-ENOMEM, -EINVAL, ...).
 *
 * This header is parsed by cffi's cdef (native/build_native.py) as well as by
 * the C compiler: the part between TIERD_CDEF_BEGIN/END must stay plain
 * declarations (no #include, no macros except those cffi accepts).
 */
#ifndef TIERD_NATIVE_H
#define TIERD_NATIVE_H

#ifndef TIERD_CFFI_CDEF
#include <stdint.h>
#include <sys/uio.h>
#endif

/* TIERD_CDEF_BEGIN */

/* Opcodes, equal to OP_READ/OP_WRITE/OP_FSYNC in tierd_daemon/engine/ops.py. */
#define TIERD_OP_READ  0
#define TIERD_OP_WRITE 1
#define TIERD_OP_FSYNC 2   /* fdatasync(file_index); addr/offset/len ignored */

/* One I/O. Layout is exactly ops.OP_DTYPE (48 bytes, little endian).
 *  addr        buffer address (aligned as the file needs when it is O_DIRECT)
 *  offset      byte offset in the file
 *  len         bytes to move; 0 completes at once with result 0
 *  file_index  index into the set given to tierd_ring_register_files()
 *  opcode      TIERD_OP_*
 *  result      out: bytes moved (== len on success; < len only for a read
 *              that hit end of file, or a write the device ended early), or
 *              -errno. FSYNC: 0 or -errno. Bad file_index: -EBADF; unknown
 *              opcode: -EINVAL.
 *  lat_ns      out: nanoseconds from queuing the op to its final completion
 *              (resubmissions included; CLOCK_MONOTONIC, read once per reap
 *              pass); 0 for ops settled without I/O. Perf uses it for
 *              completion-latency percentiles. */
struct tierd_op {
    uint64_t addr;
    uint64_t offset;
    uint32_t len;
    int32_t  file_index;
    uint8_t  opcode;
    uint8_t  _pad[7];
    int64_t  result;
    uint64_t lat_ns;
};

/* Opaque ring: an io_uring plus the registered files and buffers. */
struct tierd_ring;

/* Open a ring with queue_depth submission entries (1..4096; rounded up to a
 * power of two by the kernel). flags: IORING_SETUP_* bits passed through,
 * except SQPOLL which is refused (-EINVAL): it burns a core per ring.
 * IORING_SETUP_COOP_TASKRUN is added when the kernel knows it (5.19+).
 * Without SINGLE_ISSUER in flags, any thread may use the ring (one at a time).
 * Returns 0 and *out, or -errno: -ENOSYS (kernel without io_uring), -EPERM
 * (kernel.io_uring_disabled or seccomp), -ENOMEM, -EINVAL. */
int tierd_ring_open(unsigned queue_depth, unsigned flags, struct tierd_ring **out);

/* Close the ring and free it. NULL is a no-op. Must not race a submit. */
void tierd_ring_close(struct tierd_ring *ring);

/* Make fds[0..n) addressable as file_index 0..n-1, replacing any earlier set
 * (n == 0 clears it). A copy of the raw fds is always kept; the call then
 * tries to register them as io_uring fixed files.
 * Returns 0 when fixed files are in use, or -errno when registration failed:
 * the ring then uses the raw fds and is still fully usable. -ENOMEM from the
 * copy itself leaves the ring with no files (ops get -EBADF).
 * The caller keeps the fds open while the ring may use them. */
int tierd_ring_register_files(struct tierd_ring *ring, const int *fds, unsigned n);

/* Register iov[0..n) as fixed buffers, replacing any earlier set (n == 0
 * clears it). An op whose [addr, addr+len) lies inside one of them is issued
 * as READ_FIXED/WRITE_FIXED; other ops use plain buffers.
 * Returns 0, or -errno (typically -ENOMEM under RLIMIT_MEMLOCK without
 * CAP_IPC_LOCK, -EINVAL, -EFAULT): then no buffer is registered and every op
 * uses plain buffers. The memory must stay mapped while registered. */
int tierd_ring_register_buffers(struct tierd_ring *ring, const struct iovec *iov, unsigned n);

/* How many prepared SQEs may wait before they are handed to the kernel while
 * the queue is being (re)filled; like fio's iodepth_batch_submit. 1 (the
 * default) submits each op at once: one io_uring_enter per op, but on devices
 * that complete requests in batches (virtio, some NVMe) it keeps submissions
 * staggered and the device busy (measured: 4k randread +10-20% on virtio).
 * Larger values save syscalls. 0 is taken as 1. */
void tierd_ring_set_submit_batch(struct tierd_ring *ring, unsigned n);

/* Run ops[0..n) to completion, up to queue_depth in flight, refilling the
 * queue as completions arrive (see tierd_ring_set_submit_batch).
 * Short reads/writes are resubmitted for the remainder; a read returning 0
 * (end of file) stops that op with result = bytes so far. -EAGAIN/-EINTR
 * completions are retried up to 1000 times per op, then reported.
 * Ops run in no particular order: do not put two ops that overlap (or a write
 * and an FSYNC that must follow it) into one batch.
 * Returns 0 once every op has a result (per-op errors are in ops[i].result),
 * or -errno if the ring itself failed (e.g. -ENOMEM from the kernel, -EBUSY).
 * After such a failure some ops may still be in flight in the kernel: close
 * the ring before reusing their buffers. Holds no Python state; cffi
 * releases the GIL around it. */
int tierd_ring_submit_wait(struct tierd_ring *ring, struct tierd_op *ops, unsigned n);

/* Direct-I/O facts about the file system holding path. */
struct tierd_dio_info {
    uint32_t mem_align;          /* buffer alignment for O_DIRECT; 0 = unknown/unsupported */
    uint32_t offset_align;       /* file offset/length alignment for O_DIRECT; 0 = ditto */
    uint32_t logical_block_size; /* of the backing block device; 0 = unknown */
    uint32_t _pad;
    uint64_t fs_magic;           /* statfs f_type, e.g. 0xEF53 ext2/3/4, 0x01021994 tmpfs */
};

/* Fill *out for path (a file or a directory). Alignments come from
 * statx(STATX_DIOALIGN) (Linux 6.1+); for a directory, whose statx carries no
 * DIO alignment, a nameless O_TMPFILE is created in it and asked instead.
 * Alignments stay 0 when the kernel or file system cannot tell (or does not
 * support O_DIRECT). logical_block_size is read from sysfs for the device
 * of path (0 when not a block device, e.g. tmpfs).
 * Returns 0, or -errno from statx/statfs (e.g. -ENOENT). */
int tierd_probe_dio(const char *path, struct tierd_dio_info *out);

/* TIERD_CDEF_END */

#ifndef TIERD_CFFI_CDEF
_Static_assert(sizeof(struct tierd_op) == 48, "struct tierd_op must match ops.OP_DTYPE");
_Static_assert(sizeof(struct tierd_dio_info) == 24, "struct tierd_dio_info layout");
#endif

#endif /* TIERD_NATIVE_H */
