/* tierd_native.c - see tierd_native.h for the contract of every call. */
#define _GNU_SOURCE
#include <errno.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/stat.h>   /* before sys/stat.h: glibc then uses the kernel's
                             struct statx, which has the stx_dio_* fields */
#include <sys/stat.h>
#include <sys/vfs.h>
#include <liburing.h>

#include "tierd_native.h"

/* Bounded retries of -EAGAIN/-EINTR per op, so a device that keeps saying
 * "try again" ends in an error instead of a livelock. */
#define TIERD_MAX_RETRIES 1000

struct tierd_ring {
    struct io_uring ring;
    unsigned depth;          /* most ops we keep in flight (== SQ entries) */
    int *fds;                /* raw fds, always kept: fallback when not fixed */
    unsigned nfds;
    int files_fixed;         /* 1: sqe->fd is file_index with IOSQE_FIXED_FILE */
    struct iovec *bufs;      /* registered buffers (only when registration won) */
    unsigned nbufs;
    unsigned submit_batch;   /* most SQEs queued before they go to the kernel */
};

int tierd_ring_open(unsigned queue_depth, unsigned flags, struct tierd_ring **out)
{
    *out = NULL;
    if (queue_depth == 0 || queue_depth > 4096 || (flags & IORING_SETUP_SQPOLL))
        return -EINVAL;
    struct tierd_ring *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    /* COOP_TASKRUN (5.19+): completions are processed when we next enter the
     * kernel (we always wait in io_uring_enter anyway) instead of by an IPI
     * interrupting this thread; fio sets it too. Any thread may still submit,
     * unlike SINGLE_ISSUER/DEFER_TASKRUN, which callers may pass in flags. */
    int ret = io_uring_queue_init(queue_depth, &r->ring, flags | IORING_SETUP_COOP_TASKRUN);
    if (ret == -EINVAL)   /* older kernel: no COOP_TASKRUN */
        ret = io_uring_queue_init(queue_depth, &r->ring, flags);
    if (ret < 0) {
        free(r);
        return ret;
    }
    /* The CQ is 2x the SQ, so never having more than sq_entries in flight
     * means completions can never overflow. */
    r->depth = r->ring.sq.ring_entries;
    r->submit_batch = 1;
    *out = r;
    return 0;
}

void tierd_ring_set_submit_batch(struct tierd_ring *r, unsigned n)
{
    r->submit_batch = n == 0 ? 1 : n;
}

void tierd_ring_close(struct tierd_ring *r)
{
    if (!r)
        return;
    io_uring_queue_exit(&r->ring);   /* also drops registered files/buffers */
    free(r->fds);
    free(r->bufs);
    free(r);
}

int tierd_ring_register_files(struct tierd_ring *r, const int *fds, unsigned n)
{
    if (r->files_fixed)
        io_uring_unregister_files(&r->ring);
    r->files_fixed = 0;
    free(r->fds);
    r->fds = NULL;
    r->nfds = 0;
    if (n == 0)
        return 0;
    r->fds = malloc(n * sizeof(int));
    if (!r->fds)
        return -ENOMEM;
    memcpy(r->fds, fds, n * sizeof(int));
    r->nfds = n;
    int ret = io_uring_register_files(&r->ring, fds, n);
    if (ret < 0)
        return ret;              /* raw fds still work, just a bit slower */
    r->files_fixed = 1;
    return 0;
}

int tierd_ring_register_buffers(struct tierd_ring *r, const struct iovec *iov, unsigned n)
{
    if (r->nbufs)
        io_uring_unregister_buffers(&r->ring);
    free(r->bufs);
    r->bufs = NULL;
    r->nbufs = 0;
    if (n == 0)
        return 0;
    struct iovec *copy = malloc(n * sizeof(*copy));
    if (!copy)
        return -ENOMEM;
    memcpy(copy, iov, n * sizeof(*copy));
    int ret = io_uring_register_buffers(&r->ring, copy, n);
    if (ret < 0) {
        free(copy);
        return ret;
    }
    r->bufs = copy;
    r->nbufs = n;
    return 0;
}

/* Index of the registered buffer holding [addr, addr+len), or -1. */
static int find_buf(const struct tierd_ring *r, uint64_t addr, uint64_t len)
{
    for (unsigned i = 0; i < r->nbufs; i++) {
        uint64_t b = (uint64_t)(uintptr_t)r->bufs[i].iov_base;
        if (addr >= b && addr + len <= b + r->bufs[i].iov_len)
            return (int)i;
    }
    return -1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Fill sqe for ops[i]; while an op runs, ops[i].result holds bytes done. */
static void prep_op(struct tierd_ring *r, struct io_uring_sqe *sqe, struct tierd_op *op, unsigned i)
{
    int fd = r->files_fixed ? op->file_index : r->fds[op->file_index];
    if (op->opcode == TIERD_OP_FSYNC) {
        io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    } else {
        uint64_t done = (uint64_t)op->result;
        uint64_t addr = op->addr + done;
        unsigned len = op->len - (unsigned)done;
        uint64_t off = op->offset + done;
        int b = find_buf(r, addr, len);
        if (op->opcode == TIERD_OP_READ) {
            if (b >= 0)
                io_uring_prep_read_fixed(sqe, fd, (void *)(uintptr_t)addr, len, off, b);
            else
                io_uring_prep_read(sqe, fd, (void *)(uintptr_t)addr, len, off);
        } else {
            if (b >= 0)
                io_uring_prep_write_fixed(sqe, fd, (const void *)(uintptr_t)addr, len, off, b);
            else
                io_uring_prep_write(sqe, fd, (const void *)(uintptr_t)addr, len, off);
        }
    }
    if (r->files_fixed)
        sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, i);
}

int tierd_ring_submit_wait(struct tierd_ring *r, struct tierd_op *ops, unsigned n)
{
    /* Ops to (re)issue: new ones come from `next`, unfinished ones (short
     * transfer, EAGAIN) from the `redo` stack. Only in-flight ops can land on
     * the stack, so it never holds more than depth entries. */
    unsigned *redo = malloc(r->depth * sizeof(unsigned));
    if (!redo)
        return -ENOMEM;
    uint16_t *retries = NULL;   /* allocated on the first retry: rare */
    unsigned nredo = 0, next = 0, inflight = 0, busy = 0, queued = 0;
    int ret = 0;

    for (;;) {
        while (inflight < r->depth && (nredo || next < n)) {
            unsigned i;
            if (nredo) {
                i = redo[--nredo];
            } else {
                i = next++;
                struct tierd_op *op = &ops[i];
                op->result = 0;
                op->lat_ns = 0;
                /* Settle ops that need no I/O without a trip to the kernel. */
                if (op->file_index < 0 || (unsigned)op->file_index >= r->nfds) {
                    op->result = -EBADF;
                    continue;
                }
                if (op->opcode > TIERD_OP_FSYNC) {
                    op->result = -EINVAL;
                    continue;
                }
                if (op->opcode != TIERD_OP_FSYNC && op->len == 0)
                    continue;
            }
            /* Cannot fail: we never queue more than the SQ holds. */
            struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
            prep_op(r, sqe, &ops[i], i);
            if (ops[i].lat_ns == 0)          /* first issue: start the clock */
                ops[i].lat_ns = now_ns();
            inflight++;
            /* Hand ops to the kernel as they are prepared (submit_batch 1,
             * fio's default): a device that completes a whole batch at once
             * otherwise gets its queue refilled in lockstep and idles between
             * convoys. An error here leaves the SQEs queued for the
             * submit_and_wait below, which reports it. */
            if (++queued >= r->submit_batch) {
                io_uring_submit(&r->ring);
                queued = 0;
            }
        }
        queued = 0;
        if (inflight == 0)
            break;

        int s = io_uring_submit_and_wait(&r->ring, 1);
        if (s < 0) {
            /* EINTR/EAGAIN/EBUSY are transient: SQEs the kernel did not take
             * stay queued and go with the next submit; reap what completed
             * meanwhile. Anything else, or too many in a row, is fatal. */
            if ((s != -EINTR && s != -EAGAIN && s != -EBUSY) || ++busy > TIERD_MAX_RETRIES) {
                ret = s;
                break;
            }
        } else {
            busy = 0;
        }

        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        uint64_t reaped_at = now_ns();
        io_uring_for_each_cqe(&r->ring, head, cqe) {
            seen++;
            inflight--;
            unsigned i = (unsigned)io_uring_cqe_get_data64(cqe);
            struct tierd_op *op = &ops[i];
            int res = cqe->res;
            if (res == -EAGAIN || res == -EINTR) {
                if (!retries)
                    retries = calloc(n, sizeof(*retries));
                if (retries && retries[i] < TIERD_MAX_RETRIES) {
                    retries[i]++;
                    redo[nredo++] = i;
                } else {
                    op->result = res;
                }
            } else if (res < 0) {
                op->result = res;
            } else if (op->opcode != TIERD_OP_FSYNC && res > 0) {
                op->result += res;
                if ((uint64_t)op->result < op->len) {
                    redo[nredo++] = i;   /* short transfer: do the rest */
                    continue;
                }
            }
            /* res == 0: FSYNC success, or read at EOF (result = bytes so far). */
            if (nredo == 0 || redo[nredo - 1] != i)
                op->lat_ns = reaped_at - op->lat_ns;
        }
        io_uring_cq_advance(&r->ring, seen);
    }
    free(redo);
    free(retries);
    return ret;
}

/* Logical block size of block device maj:min from sysfs; a partition has no
 * queue/ directory of its own, so fall back to its parent's. 0 if unknown. */
static uint32_t sysfs_lbs(unsigned maj, unsigned min)
{
    static const char *fmts[] = {
        "/sys/dev/block/%u:%u/queue/logical_block_size",
        "/sys/dev/block/%u:%u/../queue/logical_block_size",
    };
    for (unsigned k = 0; k < 2; k++) {
        char p[96];
        snprintf(p, sizeof(p), fmts[k], maj, min);
        FILE *f = fopen(p, "re");
        if (!f)
            continue;
        unsigned v = 0;
        int ok = fscanf(f, "%u", &v) == 1;
        fclose(f);
        if (ok)
            return v;
    }
    return 0;
}

int tierd_probe_dio(const char *path, struct tierd_dio_info *out)
{
    memset(out, 0, sizeof(*out));
    struct statx stx;
    if (statx(AT_FDCWD, path, 0, STATX_TYPE | STATX_DIOALIGN, &stx) < 0)
        return -errno;
    struct statfs sfs;
    if (statfs(path, &sfs) < 0)
        return -errno;
    out->fs_magic = (uint64_t)(unsigned long)sfs.f_type;

    if (!(stx.stx_mask & STATX_DIOALIGN) && S_ISDIR(stx.stx_mode)) {
        /* File systems answer DIOALIGN for regular files only: ask a nameless
         * temp file in the directory (vanishes on close, leaves no trace). */
        int fd = open(path, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0) {
            struct statx t;
            if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &t) == 0 &&
                (t.stx_mask & STATX_DIOALIGN))
                stx = t, stx.stx_mask |= STATX_DIOALIGN;
            close(fd);
        }
    }
    if (stx.stx_mask & STATX_DIOALIGN) {
        out->mem_align = stx.stx_dio_mem_align;
        out->offset_align = stx.stx_dio_offset_align;
    }
    /* Device numbers of the file system (anonymous for tmpfs: no sysfs entry). */
    out->logical_block_size = sysfs_lbs(stx.stx_dev_major, stx.stx_dev_minor);
    return 0;
}
